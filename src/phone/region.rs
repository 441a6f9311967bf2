//! `Region`: a validated ISO 3166 alpha-2 code that has a numbering plan (the default for national numbers).

use std::fmt;
use std::str::FromStr;

use rlibphonenumber::{enums::Region as PlanRegion, PHONE_NUMBER_UTIL};
use serde::{Deserialize, Serialize};

/// A region whose numbering plan interprets numbers written without a country code (`030 123456` in DE).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region {
    code: [u8; 2],
    plan: PlanRegion,
}

/// The text given as a region is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region {} is not an ISO 3166 alpha-2 code with a telephone numbering plan (e.g. DE, US)", crate::connector::echo(.0))]
pub struct RegionError(pub String);

impl Region {
    /// Parses `DE`, `de` or ` De `; fails for unknown codes and codes without a numbering plan (`XX`, `001`).
    pub fn parse(text: &str) -> Result<Self, RegionError> {
        let err = || RegionError(text.to_string());
        let t = text.trim().as_bytes();
        if t.len() != 2 || !t.iter().all(u8::is_ascii_alphabetic) {
            return Err(err());
        }
        let code = [t[0].to_ascii_uppercase(), t[1].to_ascii_uppercase()];
        let as_str = std::str::from_utf8(&code).map_err(|_| err())?;
        let plan = PlanRegion::from_code(as_str).map_err(|_| err())?;
        PHONE_NUMBER_UTIL.get_country_code_for_region(plan).ok_or_else(err)?;
        Ok(Self { code, plan })
    }

    /// The upper-case code, e.g. `DE`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.code).unwrap_or("ZZ")
    }

    /// The country calling code of the region (49 for DE).
    pub fn calling_code(&self) -> u16 {
        PHONE_NUMBER_UTIL.get_country_code_for_region(self.plan).and_then(|c| u16::try_from(c).ok()).unwrap_or(0)
    }

    pub(crate) fn plan(&self) -> PlanRegion {
        self.plan
    }
}

impl FromStr for Region {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Region {
    type Error = RegionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> Self {
        r.as_str().to_string()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_regions_in_any_case() {
        for (input, code, cc) in
            [("DE", "DE", 49), ("de", "DE", 49), (" Fr ", "FR", 33), ("US", "US", 1), ("RU", "RU", 7)]
        {
            let r = Region::parse(input).unwrap();
            assert_eq!((r.as_str(), r.calling_code()), (code, cc), "{input}");
        }
    }

    #[test]
    fn rejects_unknown_and_malformed_regions() {
        for bad in ["", "D", "DEU", "XX", "ZZ", "001", "1A", "Ä1"] {
            let err = Region::parse(bad).unwrap_err();
            assert!(err.to_string().contains("ISO 3166"), "{bad}: {err}");
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let r: Region = serde_json::from_str("\"ch\"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"CH\"");
        assert!(serde_json::from_str::<Region>("\"QQ\"").is_err());
    }
}
