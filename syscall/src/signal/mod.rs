//! Signals: Linux's ABI structures and signal frames ([`frame`]), the per-thread and
//! process-wide pending sets ([`state`]).

pub mod frame;
pub mod state;
