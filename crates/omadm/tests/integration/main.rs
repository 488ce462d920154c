//! Engine tests: auth and package-0 vectors, and `ClientSession` ⇄
//! `ServerSession` in memory with a simulated clock, in XML and WBXML.

mod auth_vectors;
mod crafted;
mod faults;
mod large_objects;
mod pair;
mod sessions;
mod splitting;
