//! `scomo`: one binary for every role.

fn main() {}
