//! The SCOMO client (being written).
