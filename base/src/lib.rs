#![doc = include_str!("../README.md")]

pub mod cstr;
pub mod fs;
pub mod lock;
pub mod mountinfo;
pub mod rand;
