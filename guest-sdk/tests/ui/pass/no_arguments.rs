#[wasp_guest::job]
fn answer() -> u32 {
    42
}

#[wasp_guest::job]
fn nothing() {}

fn main() {
    let _ = answer;
    let _ = nothing;
}
