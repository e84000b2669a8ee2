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
    assert_eq!(plain(5), 5);
    assert_eq!(through_reexport(6), 6);
}
