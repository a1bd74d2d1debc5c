//! Simulcast layers and the product's per-viewer quality levels.
//!
//! Browsers publish up to three simulcast encodings with the rids `q` (quarter
//! resolution), `h` (half) and `f` (full). A stream published without simulcast
//! (OBS over WHIP) has a single layer, which we file under `f`.

use serde::{Deserialize, Serialize};

/// One simulcast encoding, ordered low to high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Quarter resolution (`rid=q`).
    Q = 0,
    /// Half resolution (`rid=h`).
    H = 1,
    /// Full resolution (`rid=f`, or a stream without simulcast).
    F = 2,
}

impl Layer {
    /// All layers, low to high.
    pub const ALL: [Layer; 3] = [Layer::Q, Layer::H, Layer::F];

    /// The layer for a simulcast rid; unknown rids (and no rid) count as full.
    pub fn from_rid(rid: Option<&str>) -> Layer {
        match rid {
            Some("q") | Some("l") | Some("low") | Some("0") => Layer::Q,
            Some("h") | Some("m") | Some("mid") | Some("1") => Layer::H,
            _ => Layer::F,
        }
    }

    /// The short name used in the API (`q`, `h`, `f`).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Q => "q",
            Layer::H => "h",
            Layer::F => "f",
        }
    }

    /// Parses the API form.
    pub fn parse(s: &str) -> Option<Layer> {
        match s {
            "q" => Some(Layer::Q),
            "h" => Some(Layer::H),
            "f" => Some(Layer::F),
            _ => None,
        }
    }

    /// Index 0..3, for per-layer arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a viewer asked for: automatic selection, or a ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCap {
    /// Pick by bandwidth estimate.
    #[default]
    Auto,
    /// Never above this layer (bandwidth may still push lower).
    Max(Layer),
}

impl LayerCap {
    /// Parses `auto`, `q`, `h` or `f`.
    pub fn parse(s: &str) -> Option<LayerCap> {
        if s == "auto" {
            Some(LayerCap::Auto)
        } else {
            Layer::parse(s).map(LayerCap::Max)
        }
    }

    /// The API form.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerCap::Auto => "auto",
            LayerCap::Max(l) => l.as_str(),
        }
    }

    /// The highest layer this cap allows.
    pub fn ceiling(self) -> Layer {
        match self {
            LayerCap::Auto => Layer::F,
            LayerCap::Max(l) => l,
        }
    }
}

/// The connection quality levels of the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Under 0.5 Mbit/s, or more than 200 ms RTT, or more than 5% loss.
    Poor,
    /// 0.5-1 Mbit/s, up to 200 ms, up to 5% loss: SD.
    Fair,
    /// 1-2 Mbit/s, up to 100 ms, up to 3% loss: HD.
    Good,
    /// Over 2 Mbit/s, under 50 ms, under 1% loss: full HD.
    Excellent,
}

impl Quality {
    /// Classifies a viewer's link. Each of bandwidth, RTT and loss caps the
    /// level on its own; the worst of them wins.
    pub fn classify(bandwidth_bps: Option<u64>, rtt_ms: Option<f64>, loss: f64) -> Quality {
        let by_bw = match bandwidth_bps {
            None => Quality::Excellent, // no estimate yet: do not punish
            Some(b) if b > 2_000_000 => Quality::Excellent,
            Some(b) if b >= 1_000_000 => Quality::Good,
            Some(b) if b >= 500_000 => Quality::Fair,
            Some(_) => Quality::Poor,
        };
        let by_rtt = match rtt_ms {
            None => Quality::Excellent,
            Some(r) if r < 50.0 => Quality::Excellent,
            Some(r) if r <= 100.0 => Quality::Good,
            Some(r) if r <= 200.0 => Quality::Fair,
            Some(_) => Quality::Poor,
        };
        let by_loss = if loss < 0.01 {
            Quality::Excellent
        } else if loss <= 0.03 {
            Quality::Good
        } else if loss <= 0.05 {
            Quality::Fair
        } else {
            Quality::Poor
        };
        by_bw.min(by_rtt).min(by_loss)
    }

    /// The layer this quality level is entitled to.
    pub fn layer(self) -> Layer {
        match self {
            Quality::Excellent | Quality::Good => Layer::F,
            Quality::Fair => Layer::H,
            Quality::Poor => Layer::Q,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rid_mapping_and_order() {
        assert_eq!(Layer::from_rid(Some("q")), Layer::Q);
        assert_eq!(Layer::from_rid(Some("h")), Layer::H);
        assert_eq!(Layer::from_rid(None), Layer::F);
        assert!(Layer::Q < Layer::H && Layer::H < Layer::F);
        assert_eq!(LayerCap::parse("auto"), Some(LayerCap::Auto));
        assert_eq!(LayerCap::parse("h"), Some(LayerCap::Max(Layer::H)));
        assert_eq!(LayerCap::parse("x"), None);
    }

    #[test]
    fn quality_levels_match_the_product_table() {
        assert_eq!(Quality::classify(Some(3_000_000), Some(20.0), 0.0), Quality::Excellent);
        assert_eq!(Quality::classify(Some(1_500_000), Some(20.0), 0.0), Quality::Good);
        assert_eq!(Quality::classify(Some(700_000), Some(20.0), 0.0), Quality::Fair);
        assert_eq!(Quality::classify(Some(300_000), Some(20.0), 0.0), Quality::Poor);
        // RTT and loss cap the level too.
        assert_eq!(Quality::classify(Some(3_000_000), Some(150.0), 0.0), Quality::Fair);
        assert_eq!(Quality::classify(Some(3_000_000), Some(20.0), 0.02), Quality::Good);
        assert_eq!(Quality::classify(Some(3_000_000), Some(20.0), 0.10), Quality::Poor);
    }
}
