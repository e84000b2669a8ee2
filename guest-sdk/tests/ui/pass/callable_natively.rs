#[wasp_guest::job]
fn add_one(x: u64) -> u64 {
    x + 1
}

/// Attributes and doc comments on the function are kept.
#[wasp_guest::job]
#[inline]
pub fn sum(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

fn main() {
    assert_eq!(add_one(1), 2);
    assert_eq!(sum(vec![1, 2, 3]), 6);
}
