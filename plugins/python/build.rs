//! Links the plugin to libpython with an rpath, records its version, and
//! compiles the cell runner to CPython bytecode ahead of time.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let config = pyo3_build_config::get();
    println!(
        "cargo:rustc-env=CELLRUN_PYTHON_VERSION={}.{}",
        config.version().major,
        config.version().minor
    );
    println!("cargo:rerun-if-changed=src/cell_runner.py");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let compiled = out.join("cell_runner.marshal");
    // The interpreter the plugin links against marshals the helper's code
    // object; the plugin reads it back instead of compiling 500 lines of
    // source at each start. Without that interpreter, the file stays empty
    // and the plugin compiles the source.
    let marshalled = config.executable().and_then(|python| {
        let script = "import marshal, sys\n\
                      source = open(sys.argv[1], encoding='utf-8').read()\n\
                      code = compile(source, '<cellrun>', 'exec', dont_inherit=True)\n\
                      sys.stdout.buffer.write(marshal.dumps(code))\n";
        let output = Command::new(python)
            .args(["-c", script, "src/cell_runner.py"])
            .output()
            .ok()?;
        output.status.success().then_some(output.stdout)
    });
    if marshalled.is_none() {
        println!("cargo:warning=cannot compile cell_runner.py ahead of time; the plugin compiles it as it starts");
    }
    std::fs::write(&compiled, marshalled.unwrap_or_default()).expect("OUT_DIR is writable");
}
