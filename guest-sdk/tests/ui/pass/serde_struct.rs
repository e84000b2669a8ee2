use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct Request {
    width: u32,
    height: u32,
}

#[derive(Debug, Serialize)]
struct Response {
    area: u64,
}

#[wasp_guest::job]
fn area(request: Request) -> Response {
    Response {
        area: u64::from(request.width) * u64::from(request.height),
    }
}

fn main() {
    let response = area(Request {
        width: 3,
        height: 4,
    });
    assert_eq!(response.area, 12);
}
