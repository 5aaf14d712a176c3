//! Test fixture: a shared library that is not a cellrun plugin (it has no
//! abi_stable library header, only one C function).

/// Adds two numbers; here only so the library exports something.
#[no_mangle]
pub extern "C" fn cellrun_fixture_add(left: i32, right: i32) -> i32 {
    left.wrapping_add(right)
}
