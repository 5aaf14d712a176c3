//! Links the plugin to libpython with an rpath, and records its version.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let config = pyo3_build_config::get();
    println!(
        "cargo:rustc-env=CELLRUN_PYTHON_VERSION={}.{}",
        config.version().major,
        config.version().minor
    );
}
