//! Tests that need the Python readers (`AUDITQ_PYTHON`, made by `scripts/test`) are
//! compiled as `#[ignore]`d without them, so that `cargo test` reports them as ignored
//! rather than passed.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=AUDITQ_PYTHON");
    println!("cargo::rustc-check-cfg=cfg(auditq_python)");
    if std::env::var_os("AUDITQ_PYTHON").is_some_and(|p| !p.is_empty()) {
        println!("cargo::rustc-cfg=auditq_python");
    }
}
