//! The TrueType font the plots' text is drawn with, found at run time.
//!
//! plotters draws every text (SVG layout included) through ab_glyph, which needs the font's
//! bytes: `$CANAO_FONT` when set, else the first of the usual system fonts that exists.

use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

use crate::{Error, Result};

/// The family name the plots ask for.
pub(crate) const FAMILY: &str = "sans-serif";

/// Fonts tried in order when `$CANAO_FONT` is not set.
const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
];

static LOADED: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

/// Registers the font once per process; returns the file it came from.
pub fn ensure() -> Result<PathBuf> {
    let loaded = LOADED.get_or_init(|| {
        let explicit = std::env::var_os("CANAO_FONT").map(PathBuf::from);
        let candidates: Vec<PathBuf> = match &explicit {
            Some(path) => vec![path.clone()],
            None => CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        for path in &candidates {
            let Ok(bytes) = std::fs::read(path) else { continue };
            // Registered fonts live as long as the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                return Ok(path.clone());
            }
            if explicit.is_some() {
                return Err(format!("{} (CANAO_FONT) is not a TrueType/OpenType font", path.display()));
            }
        }
        Err(candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
    });
    loaded.clone().map_err(|tried| Error::NoFont { tried })
}
