//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`):
//! the runtime's own checks, reached without sockets. Not an API.

use std::sync::OnceLock;

use crate::admit::{Admission, BUDGET};
use crate::crypto::{Key, Keyring, Lane};
use crate::envelope::Envelope;
use crate::stream::{NotTaken, read_first, read_large};

/// The keyring of the fuzz targets and their seed corpus.
pub fn keyring() -> Keyring {
    Keyring::new(Key::from_bytes([7u8; 32]), "fuzz")
}

/// A receiver as the runtime opens packets: checks before decryption, the
/// replay window, then the keyring of [`keyring`].
#[derive(Debug)]
pub struct Receiver(Envelope);

impl Receiver {
    /// A receiver; `legacy` reads version-1 envelopes too.
    pub fn new(legacy: bool) -> Receiver {
        Receiver(Envelope::new(Some(keyring()), legacy))
    }

    /// Opens `wire` as a packet of at most `max` plaintext bytes; the
    /// rejection's counter label otherwise.
    pub fn open(&self, lane: Lane, wire: &[u8], max: usize) -> Result<Vec<u8>, &'static str> {
        self.0.open(lane, None, wire, max).map(|o| o.plain.into_owned()).map_err(|e| e.reason())
    }
}

/// What the stream reader made of the bytes a peer sent after connecting.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirstFrame {
    /// The first frame opened (and, if it announced one, the large frame).
    Taken {
        /// The first frame's plaintext, or the announced frame's.
        plain: Vec<u8>,
    },
    /// Refused on its length or the budget, before reading it.
    Refused(&'static str),
    /// Read, and it did not open.
    Rejected(&'static str),
    /// The input ended before a frame, or inside one.
    Ended,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("runtime: {e}"))
    })
}

/// Runs the stream first-frame reader on `input` with the keyring of
/// [`keyring`]: from a `known` member's IP or not, frames up to `max_frame`.
/// Panics if the unauthenticated budget is not whole again afterwards.
pub fn first_frame(input: &[u8], known: bool, max_frame: usize) -> FirstFrame {
    let envelope = Envelope::new(Some(keyring()), true);
    let admission = Admission::default();
    let outcome = runtime().block_on(async {
        let mut r = input;
        let (plain, _, _) = read_first(&mut r, known, &envelope, &admission, max_frame).await?;
        if plain.first() == Some(&crate::stream::LARGE) {
            return read_large(&mut r, &plain, &envelope, max_frame).await.map(|(p, _)| p);
        }
        Ok(plain)
    });
    assert!(admission.reserve(BUDGET).is_some(), "the budget is whole again");
    match outcome {
        Ok(plain) => FirstFrame::Taken { plain },
        Err(NotTaken::Refused(why)) => FirstFrame::Refused(why.reason()),
        Err(NotTaken::Rejected(e)) => FirstFrame::Rejected(e.reason()),
        Err(NotTaken::Closed | NotTaken::Io(_)) => FirstFrame::Ended,
    }
}

/// The `envelope` fuzz target's checks. Byte 0 chooses the lane (bit 0) and
/// the case (bits 1-2): open the rest as the runtime would (never panics; a
/// version-2 envelope that opened is a replay the second time), seal the
/// rest in both versions and open it (and never a copy with one bit
/// flipped), or run the rest as operations on a replay window and compare
/// it with a model.
pub fn envelope_case(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let lane = if mode & 1 == 0 { Lane::Datagram } else { Lane::Stream };
    match (mode >> 1) & 3 {
        0 => {
            let rx = Receiver::new(mode & 8 == 0);
            if let Ok(plain) = rx.open(lane, rest, 1400) {
                assert!(plain.len() <= 1400);
                if rest.first() == Some(&crate::crypto::ENVELOPE_VERSION) {
                    assert_eq!(rx.open(lane, rest, 1400), Err("replayed"));
                }
            }
            let _ = keyring().open(lane, rest);
        }
        1 => {
            let (ring, rx) = (keyring(), Receiver::new(true));
            let max = rest.len();
            for mut sealed in [ring.seal(lane, rest), ring.seal_legacy(lane, rest)] {
                let flip = rest.iter().fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(usize::from(*b)));
                let mut tampered = sealed.clone();
                let i = flip % tampered.len();
                tampered[i] ^= 1 << (flip % 8);
                assert!(rx.open(lane, &tampered, max).is_err(), "a flipped bit at {i} opened");
                assert_eq!(rx.open(lane, &sealed, max).as_deref(), Ok(rest));
                sealed.push(0);
                assert!(rx.open(lane, &sealed, max).is_err());
            }
        }
        _ => window_against_model(rest),
    }
}

/// Operations of 4 bytes each (session, lane, counter) on a replay window
/// that never forgets, against the rule it implements.
fn window_against_model(ops: &[u8]) {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::crypto::{ReplayWindow, SESSION_LEN, Sender};
    let mut window = ReplayWindow::new(64);
    let mut model: BTreeMap<(u8, bool), (u32, BTreeSet<u32>)> = BTreeMap::new();
    for op in ops.chunks_exact(4) {
        let (session, stream, counter) =
            (op[0] % 8, op[1] & 1 == 1, u32::from(u16::from_be_bytes([op[2], op[3]])));
        let lane = if stream { Lane::Stream } else { Lane::Datagram };
        let sender = Sender { session: [session; SESSION_LEN], lane, counter };
        let fresh = match model.get(&(session, stream)) {
            None => true,
            Some((highest, seen)) => {
                counter > *highest || (*highest - counter < 64 && !seen.contains(&counter))
            }
        };
        assert_eq!(window.check(&sender).is_ok(), fresh, "{sender:?}");
        assert_eq!(window.record(&sender).is_ok(), fresh, "{sender:?}");
        if fresh {
            let (highest, seen) = model.entry((session, stream)).or_insert((counter, BTreeSet::new()));
            *highest = (*highest).max(counter);
            seen.insert(counter);
        }
    }
}

/// The `stream_first_frame` fuzz target's checks. Byte 0, bit 0: the peer
/// is at a known member's IP. The rest is what the peer sends. Never panics,
/// leaves the budget whole, and refuses a first frame longer than allowed
/// on its length alone.
pub fn first_frame_case(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let known = mode & 1 == 1;
    let max_frame = 1 << 20;
    let outcome = first_frame(rest, known, max_frame);
    if let [a, b, c, d, version, ..] = *rest {
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        let cap = if version == crate::crypto::ENVELOPE_VERSION || !known {
            crate::stream::FIRST_FRAME_MAX
        } else {
            max_frame
        };
        if len > cap {
            assert_eq!(outcome, FirstFrame::Refused("too_large"));
        }
    }
    if let FirstFrame::Taken { plain } = &outcome {
        assert!(plain.len() <= max_frame);
    }
}
