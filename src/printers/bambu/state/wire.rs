//! The Bambu report's wire form: a serde deserializer that keeps only the members of
//! `print` the daemon reads (`FIELDS`) and skips the rest without building it.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{FIELDS, ReportError};

/// What the daemon reads of one report, picked out while it is parsed: the members of
/// `print` named in `FIELDS`. The rest (a real X1's AMS, HMS,
/// camera and network detail, up to 40 KB) is skipped without being built: parsing
/// whole reports into `Value` trees was a tenth of the daemon's CPU at 2,000 printers.
#[derive(Default)]
pub(super) struct Report {
    pub(super) print: Option<Print>,
}

pub(super) enum Print {
    /// `print` was there but not an object.
    NotObject,
    /// Its members named in `FIELDS`, as they came (`null` included; of a name given
    /// twice, the last).
    Fields(Map<String, Value>),
}

/// Only a report that is not an object fails to deserialise as a `Report` for anything
/// but its syntax: every member kept is a `Value`, whatever its type.
pub(super) fn report_error(e: serde_json::Error) -> ReportError {
    if e.is_data() {
        ReportError::NotObject
    } else {
        ReportError::NotJson(e.to_string())
    }
}

/// A member's name, looked up without being copied: `Some(i)` for `names[i]`.
struct NameIn<'a>(&'a [&'a str]);

impl<'de> DeserializeSeed<'de> for NameIn<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameIn<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|n| *n == s))
    }
}

/// Goes through an object's members: `read(i, m)` reads the value of `names[i]`; any
/// other member's value is skipped without being built.
fn read_members<'de, A: MapAccess<'de>>(
    mut m: A,
    names: &[&str],
    mut read: impl FnMut(usize, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    while let Some(name) = m.next_key_seed(NameIn(names))? {
        match name {
            Some(i) => read(i, &mut m)?,
            None => {
                m.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(())
}

const FIELD_NAMES: [&str; FIELDS.len()] = {
    let mut names = [""; FIELDS.len()];
    let mut i = 0;
    while i < FIELDS.len() {
        names[i] = FIELDS[i].0;
        i += 1;
    }
    names
};

impl<'de> Deserialize<'de> for Report {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Report, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Report;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Report, A::Error> {
                let mut r = Report::default();
                read_members(m, &["print"], |_, m| {
                    r.print = Some(m.next_value()?);
                    Ok(())
                })?;
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Print {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Print, D::Error> {
        d.deserialize_any(PrintVisitor)
    }
}

struct PrintVisitor;

impl<'de> Visitor<'de> for PrintVisitor {
    type Value = Print;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Print, A::Error> {
        let mut fields = Map::new();
        read_members(m, &FIELD_NAMES, |i, m| {
            fields.insert(FIELD_NAMES[i].to_owned(), m.next_value()?);
            Ok(())
        })?;
        Ok(Print::Fields(fields))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Print, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Print::NotObject)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Print, E> {
        Ok(Print::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Print, E> {
        Ok(Print::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Print, E> {
        Ok(Print::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Print, E> {
        Ok(Print::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Print, E> {
        Ok(Print::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Print, E> {
        Ok(Print::NotObject)
    }
}
