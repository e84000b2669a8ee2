struct Counter {
    count: u32,
}

impl Counter {
    #[wasp_guest::job]
    fn job(&self, x: u32) -> u32 {
        self.count + x
    }
}

fn main() {}
