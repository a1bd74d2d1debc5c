//! OnAir SFU engine.
