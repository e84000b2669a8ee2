#[wasp_guest::job]
fn job<T: Copy>(x: T) -> T {
    x
}

fn main() {}
