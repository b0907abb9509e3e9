//! Partial option tables: `PreprocessOptions` and `AugmentOptions` take their defaults for
//! every field a table leaves out (a `[data.preprocess]` table with only `size`, say).
//!
//! The crate has no TOML or JSON parser, so the tables are fed through serde's own value
//! deserializers (`#[serde(default)]` acts the same for every format).

use dicyc_volume::augment::AugmentOptions;
use dicyc_volume::preprocess::{NormRegion, PreprocessOptions};
use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{Deserialize, Deserializer, IntoDeserializer, Visitor};

/// A tiny self-describing value: enough for the option tables (numbers, booleans, strings,
/// arrays, nested tables).
#[derive(Clone)]
enum V {
    F(f64),
    U(u64),
    B(bool),
    S(&'static str),
    Seq(Vec<V>),
    Map(Vec<(&'static str, V)>),
}

impl<'de> Deserializer<'de> for V {
    type Error = Error;

    fn deserialize_any<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Error> {
        match self {
            V::F(x) => visitor.visit_f64(x),
            V::U(x) => visitor.visit_u64(x),
            V::B(x) => visitor.visit_bool(x),
            V::S(x) => visitor.visit_borrowed_str(x),
            V::Seq(xs) => visitor.visit_seq(SeqDeserializer::new(xs.into_iter())),
            V::Map(kv) => visitor.visit_map(MapDeserializer::new(kv.into_iter())),
        }
    }

    fn deserialize_enum<W: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: W,
    ) -> Result<W::Value, Error> {
        match self {
            V::S(x) => visitor.visit_enum(x.into_deserializer()),
            _ => Err(serde::de::Error::custom("enum expects a string")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for V {
    type Deserializer = V;
    fn into_deserializer(self) -> V {
        self
    }
}

fn preprocess(table: Vec<(&'static str, V)>) -> Result<PreprocessOptions, Error> {
    PreprocessOptions::deserialize(V::Map(table))
}

#[test]
fn empty_tables_are_the_defaults() {
    assert_eq!(preprocess(vec![]).unwrap(), PreprocessOptions::default());
    assert_eq!(
        AugmentOptions::deserialize(V::Map(vec![])).unwrap(),
        AugmentOptions::default()
    );
}

#[test]
fn partial_preprocess_table_keeps_the_other_defaults() {
    let got = preprocess(vec![
        ("size", V::Seq(vec![V::U(64), V::U(96)])),
        ("norm_region", V::S("foreground")),
    ])
    .unwrap();
    let want = PreprocessOptions {
        size: (64, 96),
        norm_region: NormRegion::Foreground,
        ..PreprocessOptions::default()
    };
    assert_eq!(got, want);
}

#[test]
fn partial_nested_augment_table_keeps_the_other_defaults() {
    let got = preprocess(vec![
        ("sd_range", V::F(2.5)),
        (
            "augment",
            V::Map(vec![("rotate_deg", V::F(4.0)), ("enabled", V::B(false))]),
        ),
    ])
    .unwrap();
    let want = PreprocessOptions {
        sd_range: 2.5,
        augment: AugmentOptions {
            rotate_deg: 4.0,
            enabled: false,
            ..AugmentOptions::default()
        },
        ..PreprocessOptions::default()
    };
    assert_eq!(got, want);
    // The defaults the table left out are the real ones (not zeros).
    assert_eq!(got.augment.flip_x, 0.5);
    assert_eq!(got.min_foreground, 0.05);
}

#[test]
fn wrong_types_are_still_errors() {
    let e = preprocess(vec![("sd_range", V::S("three"))]).unwrap_err();
    assert!(e.to_string().contains("invalid type"), "{e}");
}

#[test]
fn misspelt_keys_are_errors_not_silent_defaults() {
    let e = preprocess(vec![("sd_rnage", V::F(5.0))]).unwrap_err();
    assert!(e.to_string().contains("sd_rnage"), "{e}");
    let e = preprocess(vec![("augment", V::Map(vec![("rotate", V::F(4.0))]))]).unwrap_err();
    assert!(e.to_string().contains("rotate"), "{e}");
}
