//! The models' output tables in the lake.
