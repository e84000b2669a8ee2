#[wasp_guest::job]
fn checked_div(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 {
        Err("division by zero".to_string())
    } else {
        Ok(a / b)
    }
}

#[wasp_guest::job]
fn parse(text: String) -> std::result::Result<u32, std::num::ParseIntError> {
    text.parse()
}

fn main() {
    assert_eq!(checked_div(6, 3), Ok(2));
    assert!(checked_div(1, 0).is_err());
    assert_eq!(parse("7".to_string()), Ok(7));
}
