#[wasp_guest::job]
fn job(values: impl IntoIterator<Item = u32>) -> u32 {
    values.into_iter().sum()
}

fn main() {}
