//! The host's side of the wire form ([`executor_core::wire`]): what
//! `get_wire` and `set_wire` of a plugin call use.

use executor_core::wire::{self, Decoder};
use executor_core::Cell;
use rhai::Dynamic;

/// The wire form of `value`, with the code of the functions it points at
/// taken from `cell`'s notebook, or why it has none.
pub(crate) fn encode(value: &Dynamic, cell: &Cell) -> Result<String, String> {
    wire::encode(value, cell).map_err(|error| error.to_string())
}

/// The value whose wire form is `text`.
pub(crate) fn decode(text: &str) -> Result<Dynamic, String> {
    Decoder::new()
        .decode(text)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use executor_core::{CellSource, Limits, Notebook};
    use rhai::{FnPtr, Map};

    use super::*;

    fn cell() -> Notebook {
        Notebook::compile(vec![CellSource::new("a", "1", 1)], &Limits::default())
    }

    #[test]
    fn values_round_trip_bit_for_bit() {
        let notebook = cell();
        let mut map = Map::new();
        map.insert("z".into(), Dynamic::from_float(-0.0));
        map.insert("n".into(), Dynamic::from_float(f64::NAN));
        let value = Dynamic::from_array(vec![
            Dynamic::UNIT,
            Dynamic::from_int(i64::MIN),
            Dynamic::from_float(0.1 + 0.2),
            Dynamic::from_char('é'),
            Dynamic::from("a\"\n".to_owned()),
            Dynamic::from_blob(vec![0, 255]),
            Dynamic::from_map(map).into_shared(),
            Dynamic::from(FnPtr::new("to_string").unwrap()),
        ]);
        let text = encode(&value, &notebook.cells()[0]).unwrap();
        assert_eq!(
            encode(&decode(&text).unwrap(), &notebook.cells()[0]).unwrap(),
            text
        );
    }

    #[test]
    fn the_sdk_reads_what_the_host_writes() {
        let notebook = cell();
        let value = Dynamic::from_array(vec![
            Dynamic::from_float(1.0 / 3.0),
            Dynamic::from_char('x'),
        ]);
        let text = encode(&value, &notebook.cells()[0]).unwrap();
        let sdk = executor_abi::sdk::wire::decode(&text).unwrap();
        assert_eq!(executor_abi::sdk::wire::encode(&sdk), text);
    }

    #[test]
    fn a_value_without_a_wire_form_says_what_it_is() {
        let notebook = cell();
        let error = encode(
            &Dynamic::from(std::time::Instant::now()),
            &notebook.cells()[0],
        )
        .unwrap_err();
        assert!(error.contains("has no wire form"), "{error}");
    }
}
