//! WHIP/WHEP signaling.
