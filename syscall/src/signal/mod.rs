//! Signals: Linux's ABI structures and signal frames ([`frame`]), the per-thread and
//! process-wide pending sets ([`state`]), and sending, delivering and returning from
//! handlers ([`deliver`]).

pub mod deliver;
pub mod frame;
pub mod state;
