//! The bytes a cache key hashes: any `Serialize` value written in a compact, unambiguous,
//! tagged binary form (serde's data model, not JSON: no escaping or number formatting, which
//! made `serde_json` the bulk of a key's cost).
//!
//! Every value starts with a tag byte and is self-delimiting (strings carry their length,
//! sequences and maps end with a marker that is not a tag), so different values never write
//! the same bytes. Structs are written like maps with their field names as keys, as in JSON;
//! a non-negative signed integer is written like the unsigned one, as in JSON.

use std::fmt;

use serde::ser::{self, Serialize};

/// Writes `value` to `out`.
pub(crate) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Writer { out })
}

/// Writes a list of strings (as a sequence of `str`).
pub(crate) fn write_strs<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>) {
    let mut writer = Writer { out };
    writer.out.push(tag::SEQ);
    for item in items {
        writer.str(item);
    }
    writer.out.push(tag::SEQ_END);
}

#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

mod tag {
    pub(super) const FALSE: u8 = b'0';
    pub(super) const TRUE: u8 = b'1';
    pub(super) const UNSIGNED: u8 = b'u';
    pub(super) const SIGNED: u8 = b'i';
    pub(super) const UNSIGNED_128: u8 = b'U';
    pub(super) const SIGNED_128: u8 = b'I';
    pub(super) const FLOAT: u8 = b'f';
    pub(super) const STR: u8 = b's';
    pub(super) const BYTES: u8 = b'y';
    pub(super) const NONE: u8 = b'n';
    pub(super) const SOME: u8 = b'S';
    pub(super) const UNIT: u8 = b'-';
    pub(super) const VARIANT: u8 = b'v';
    pub(super) const SEQ: u8 = b'[';
    pub(super) const SEQ_END: u8 = b']';
    pub(super) const MAP: u8 = b'{';
    pub(super) const MAP_END: u8 = b'}';
}

impl Writer<'_> {
    fn str(&mut self, text: &str) {
        self.out.push(tag::STR);
        self.len(text.len());
        self.out.extend_from_slice(text.as_bytes());
    }

    /// A length as LEB128 (one byte below 128: short strings such as field names stay short,
    /// and the whole key usually stays in XXH3's fast path for inputs up to 240 bytes).
    fn len(&mut self, mut len: usize) {
        loop {
            let low = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                self.out.push(low);
                return;
            }
            self.out.push(low | 0x80);
        }
    }

    fn unsigned(&mut self, value: u64) {
        self.out.push(tag::UNSIGNED);
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    fn variant(&mut self, name: &str) {
        self.out.push(tag::VARIANT);
        self.str(name);
    }
}

impl<'a, 'b> ser::Serializer for &'a mut Writer<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(if v { tag::TRUE } else { tag::FALSE });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        match u64::try_from(v) {
            Ok(unsigned) => self.unsigned(unsigned),
            Err(_) => {
                self.out.push(tag::SIGNED);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.out.push(tag::SIGNED_128);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.unsigned(v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.out.push(tag::UNSIGNED_128);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(Error(format!("{v} is not a JSON number")));
        }
        self.out.push(tag::FLOAT);
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.str(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.str(v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.push(tag::BYTES);
        self.len(v.len());
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(tag::NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.push(tag::SOME);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push(tag::UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.str(variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(variant);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(tag::SEQ);
        Ok(Compound {
            writer: self,
            end: tag::SEQ_END,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.variant(variant);
        self.serialize_seq(Some(len))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(tag::MAP);
        Ok(Compound {
            writer: self,
            end: tag::MAP_END,
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.variant(variant);
        self.serialize_map(Some(len))
    }
}

pub(crate) struct Compound<'a, 'b> {
    writer: &'a mut Writer<'b>,
    end: u8,
}

impl Compound<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.writer)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.writer.str(key);
        value.serialize(&mut *self.writer)
    }

    fn finish(self) -> Result<(), Error> {
        self.writer.out.push(self.end);
        Ok(())
    }
}

/// The element-wise compounds (sequences, tuples, tuple structs and variants) all write
/// their elements in order and close with the end marker.
macro_rules! elements {
    ($($trait:ident::$method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }

            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// Structs and struct variants write `name, value` pairs, like a map.
macro_rules! fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.field(key, value)
            }

            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.element(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn bytes(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        super::write(&mut out, value).unwrap();
        out
    }

    #[test]
    fn different_values_write_different_bytes() {
        // Pairs that a careless encoding would confuse.
        let values = [
            json!(null),
            json!(0),
            json!(0.0),
            json!(-1),
            json!(false),
            json!(""),
            json!("0"),
            json!([]),
            json!([[]]),
            json!([[], []]),
            json!({}),
            json!({"a": "b"}),
            json!({"ab": ""}),
            json!(["a", "b"]),
            json!(["ab"]),
            json!([{"a": 1}, {}]),
            json!([{}, {"a": 1}]),
            json!({"a": [1], "b": []}),
            json!({"a": [], "b": [1]}),
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert_ne!(bytes(a), bytes(b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn a_string_list_writes_like_a_sequence() {
        let mut out = Vec::new();
        super::write_strs(&mut out, ["a=b"]);
        assert_eq!(out, bytes(&json!(["a=b"])));
        let mut two = Vec::new();
        super::write_strs(&mut two, ["a", "b"]);
        assert_ne!(out, two);
    }

    #[test]
    fn lengths_are_leb128() {
        for (len, encoded) in [
            (0_usize, &[0_u8][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
        ] {
            let text = "x".repeat(len);
            let out = bytes(&json!(text));
            assert_eq!(&out[1..1 + encoded.len()], encoded, "{len}");
            assert_eq!(out.len(), 1 + encoded.len() + len);
        }
    }

    #[test]
    fn a_struct_writes_like_the_map_of_its_fields() {
        #[derive(serde::Serialize)]
        struct Point {
            x: u32,
            y: i64,
        }
        let mut typed = Vec::new();
        super::write(&mut typed, &Point { x: 1, y: 2 }).unwrap();
        assert_eq!(typed, bytes(&json!({"x": 1, "y": 2})));
    }

    #[test]
    fn non_finite_floats_are_refused() {
        let mut out = Vec::new();
        assert!(super::write(&mut out, &f64::NAN).is_err());
    }
}
