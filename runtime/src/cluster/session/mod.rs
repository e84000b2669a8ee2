//! One connection to a node: `state` is the protocol's client side as plain data (what is
//! in flight, the credit window, hand-backs and retries, module requests, cancellations,
//! draining); `driver` connects it to quinn and to the server's queue.

mod driver;
mod state;

pub(crate) use driver::{End, Session};
pub(crate) use state::Delta;
#[cfg(test)]
pub(crate) use state::answer_deadline;

#[cfg(test)]
mod reader_tests;
