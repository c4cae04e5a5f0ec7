//! The pipe protocol's frame reader (`sandbox_proto::protocol::read_frame`), in either direction.
//!
//! The input is a byte stream as it would arrive on the pipe: frames are read one after another
//! until the first error, as the supervisor's and the child's loops do.

use crate::alloc;
use sandbox_proto::protocol::{self, Frame, FrameError, PREFIX_LEN};
use std::fmt::Debug;

/// Allocations that are not sized by the input (an error value, a short message) stay below this.
const SMALL: usize = 1024;

/// Reads `data` as a stream of `T` frames with `T`'s own limit, as both ends of the pipe do.
pub fn check<T>(data: &[u8])
where
    T: Frame + PartialEq + Debug,
{
    let max = T::MAX;
    assert!(
        alloc::installed(),
        "the target must install alloc::Counting"
    );
    let mut rest = data;
    loop {
        let before = rest;
        alloc::reset();
        let read = protocol::read_frame::<_, T>(&mut rest, max);
        let largest = alloc::largest();
        assert!(
            largest <= max,
            "reading a frame allocated {largest} bytes at once; the limit is {max}"
        );
        let msg = match read {
            Ok(msg) => msg,
            Err(e) => {
                refused_as_expected(before, max, &e, largest);
                return;
            }
        };
        let consumed = before.len() - rest.len();
        let body_len = consumed - PREFIX_LEN;

        let frame = protocol::encode(&msg).expect("a decoded message encodes again");
        let again = frame.len() - PREFIX_LEN;
        assert!(
            again <= body_len,
            "re-encoding a {body_len}-byte body gave {again} bytes: {msg:?}"
        );
        let back: T =
            protocol::read_frame(&mut &frame[..], max).expect("the re-encoded frame decodes");
        assert_eq!(back, msg, "the re-encoded frame decodes to another message");
    }
}

/// The error matches what the bytes are: a short stream is `Closed` (or a short body), a prefix
/// over the limit is `TooLarge` and cost nothing sized by it.
fn refused_as_expected(bytes: &[u8], max: usize, e: &FrameError, largest: usize) {
    if bytes.len() < PREFIX_LEN {
        assert!(matches!(e, FrameError::Closed), "short prefix gave {e:?}");
        return;
    }
    let mut prefix = [0u8; PREFIX_LEN];
    prefix.copy_from_slice(&bytes[..PREFIX_LEN]);
    let claimed = u32::from_be_bytes(prefix) as usize;
    if claimed > max {
        assert!(
            matches!(e, FrameError::TooLarge { len, max: m } if *len == claimed && *m == max),
            "a {claimed}-byte prefix over {max} gave {e:?}"
        );
        assert!(
            largest < SMALL,
            "refusing a {claimed}-byte prefix allocated {largest} bytes"
        );
    } else if bytes.len() - PREFIX_LEN < claimed {
        // A body cut short by the end of the stream reads as the pipe closing mid-frame.
        assert!(matches!(e, FrameError::Closed), "short body gave {e:?}");
    } else {
        assert!(
            matches!(e, FrameError::Malformed(_)),
            "whole body gave {e:?}"
        );
    }
    // Every refusal can be shown to an operator.
    assert!(!e.to_string().is_empty());
}
