//! How JSON input is read into the domain's types, where serde's defaults are laxer than JSON
//! (and the API's contract, openapi.yaml) mean.

/// For `#[serde(deserialize_with = "whole_number")]` on a count or a size: JSON writes one number
/// `1024` or `1024.0` alike (JSON Schema's `integer` takes both), while serde's integer types take
/// only the first. Fractions, negatives and values beyond the field's type are refused.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole<T>(std::marker::PhantomData<T>);

    impl<T: TryFrom<u64>> serde::de::Visitor<'_> for Whole<T> {
        type Value = T;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::custom(format!("{value} is out of range")))
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<T, E> {
            let value = u64::try_from(value).map_err(|_| E::custom("must not be negative"))?;
            self.visit_u64(value)
        }

        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<T, E> {
            // 2^64 is the first f64 beyond u64; every f64 below it with no fraction converts exactly.
            if value.fract() != 0.0 || !(0.0..18_446_744_073_709_551_616.0).contains(&value) {
                return Err(E::custom(format!("{value} is not a whole number in range")));
            }
            self.visit_u64(value as u64)
        }
    }

    deserializer.deserialize_any(Whole(std::marker::PhantomData))
}

/// For `#[serde(deserialize_with = "whole_number_or_null")]`: [`whole_number`], or `null` for
/// None (with `default`, an absent field is None too).
pub fn whole_number_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::{Deserialize, de::Error};
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        value => whole_number(value).map(Some).map_err(D::Error::custom),
    }
}

/// For `#[serde(default, deserialize_with = "object_or_null")]` on an optional nested object:
/// serde's derived structs also take a JSON array of the fields in order, which no client of this
/// API means (`json_body` refuses it at the top level).
pub fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::{Deserialize, de::Error};
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        object @ serde_json::Value::Object(_) => T::deserialize(object).map(Some).map_err(D::Error::custom),
        _ => Err(D::Error::custom("must be a JSON object or null")),
    }
}

/// For `#[serde(default, deserialize_with = "absent_or_value")]` on a field that may be left out
/// but has no meaning as `null` (serde's `Option` reads `null` as absent).
pub fn absent_or_value<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_number_may_be_written_with_a_zero_fraction() {
        #[derive(serde::Deserialize)]
        struct Sized {
            #[serde(deserialize_with = "whole_number")]
            size: u32,
        }
        let size = |json: &str| serde_json::from_str::<Sized>(json).map(|s| s.size).map_err(|e| e.to_string());
        assert_eq!(size(r#"{"size": 1024}"#), Ok(1024));
        assert_eq!(size(r#"{"size": 1024.0}"#), Ok(1024));
        for refused in [r#"{"size": 1024.5}"#, r#"{"size": -1}"#, r#"{"size": 4294967296}"#, r#"{"size": "1"}"#] {
            assert!(size(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_nullable_whole_number_takes_null_and_whole_numbers_only() {
        #[derive(serde::Deserialize)]
        struct Budget {
            #[serde(deserialize_with = "whole_number_or_null")]
            limit: Option<u64>,
        }
        let limit = |json: &str| serde_json::from_str::<Budget>(json).map(|b| b.limit).map_err(|e| e.to_string());
        assert_eq!(limit(r#"{"limit": 48.0}"#), Ok(Some(48)));
        assert_eq!(limit(r#"{"limit": null}"#), Ok(None));
        for refused in [r#"{}"#, r#"{"limit": 1.5}"#, r#"{"limit": -1}"#, r#"{"limit": "1"}"#] {
            assert!(limit(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_field_may_be_left_out_but_not_null() {
        #[derive(serde::Deserialize)]
        struct Patch {
            #[serde(default, deserialize_with = "absent_or_value")]
            name: Option<String>,
        }
        let name = |json: &str| serde_json::from_str::<Patch>(json).map(|p| p.name).map_err(|e| e.to_string());
        assert_eq!(name(r#"{"name": "x"}"#), Ok(Some("x".to_owned())));
        assert_eq!(name("{}"), Ok(None));
        assert!(name(r#"{"name": null}"#).unwrap_err().contains("null"));
    }
}
