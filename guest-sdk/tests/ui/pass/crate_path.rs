mod reexport {
    pub use wasp_guest as guest;
}

#[wasp_guest::job(crate = "wasp_guest")]
fn plain(x: u32) -> u32 {
    x
}

#[wasp_guest::job(crate = "crate::reexport::guest", name = "renamed")]
fn through_reexport(x: u32) -> u32 {
    x
}

fn main() {
    // The path is only used by the wasm32 export; name it here so the host build uses it too.
    assert_eq!(reexport::guest::abi::ABI_VERSION, 1);
    assert_eq!(plain(5), 5);
    assert_eq!(through_reexport(6), 6);
}
