//! A route's JSON body type as a value, so that the one route declaration also tells what its
//! handler parses: openapi.yaml's request schema is checked against it (`tests/integration/
//! openapi.rs`) without a list of types kept beside the routes.

use serde::de::{DeserializeOwned, Error, Visitor, value};

/// The Rust type a route's handler parses its JSON body into.
#[derive(Clone, Copy)]
pub struct BodyType {
    pub name: fn() -> &'static str,
    /// The fields its derived `Deserialize` names (after renaming).
    pub fields: fn() -> &'static [&'static str],
    /// Whether a JSON value parses as it.
    pub parses: fn(serde_json::Value) -> Result<(), String>,
}

impl BodyType {
    pub const fn of<T: DeserializeOwned>() -> Self {
        Self { name: std::any::type_name::<T>, fields: serde_fields::<T>, parses: parses::<T> }
    }
}

fn parses<T: DeserializeOwned>(value: serde_json::Value) -> Result<(), String> {
    serde_json::from_value::<T>(value).map(drop).map_err(|e| e.to_string())
}

/// The fields a derived `Deserialize` asks for, read by a deserializer that stops at the struct
/// (empty for anything but a struct).
pub fn serde_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, value::Error> {
            Err(value::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, value::Error> {
            *self.0 = fields;
            Err(value::Error::custom("fields read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}
