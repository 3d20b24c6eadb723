//! A member that knows a few others receives arbitrary datagrams and streams
//! (push-pull, digests, stream probes), then runs its timers: it never
//! panics, and what it sends stays within its size limits.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_proto::codec::{Message, Packet, Update, encode};
use vigil_proto::{Channel, Config, Core, Health, Identity, Instant, Meta, Name};

fn core() -> Core {
    let me = Identity {
        name: Name::new("me").unwrap(),
        addr: ([10, 0, 0, 1], 7900).into(),
        meta: Meta::default(),
        health: Health::ok(),
    };
    let mut c = Core::new(Config::lan(), me, 1, 1, Instant::ZERO).unwrap();
    let updates = (2..6u8)
        .map(|i| Update::Alive {
            name: Name::new(&format!("m{i}")).unwrap(),
            incarnation: 1,
            addr: ([10, 0, 0, i], 7900).into(),
            meta: Meta::default(),
            health: Health::ok(),
        })
        .collect();
    let join = encode(&Packet { message: Message::Gossip, updates });
    c.handle_datagram(Instant::ZERO, ([10, 0, 0, 2], 7900).into(), &join).unwrap();
    c
}

fuzz_target!(|data: &[u8]| {
    let mut c = core();
    let mut now = Instant::from_millis(1);
    // Split the input into chunks at 0xFF 0xFF: each chunk is one input.
    for (i, chunk) in data.split(|b| *b == 0xFF).enumerate() {
        let from = ([10, 0, 0, (i % 6) as u8], 7900).into();
        if i % 2 == 0 {
            let _ = c.handle_datagram(now, from, chunk);
        } else {
            let _ = c.handle_stream(now, from, chunk);
        }
        now = now + Duration::from_millis(300);
        c.handle_timeout(now);
        while let Some(t) = c.poll_transmit() {
            if t.channel == Channel::Datagram {
                assert!(t.payload.len() <= c.config().max_packet_size);
            }
            vigil_proto::codec::decode(&t.payload).expect("the core sends only valid packets");
        }
        while c.poll_event().is_some() {}
    }
});
