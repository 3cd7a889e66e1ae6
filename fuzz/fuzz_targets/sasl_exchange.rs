//! Any SASL tokens: a SCRAM exchange of either mechanism, fed arbitrary client messages (the
//! first up to a 0xff byte, the second after it), never panics and never authenticates, since
//! no input can carry a proof for the server's fresh nonce; PLAIN-shaped tokens are decoded the
//! same way by the session.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_broker::security::scram::{ScramMechanism, ScramServer, ScramStep};

fuzz_target!(|data: &[u8]| {
    let (first, last) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    for m in ScramMechanism::ALL {
        let credential = m.credential(b"salt".to_vec(), &m.salted_password("pw", b"salt", 1), 1);
        let lookup = |_: &str| Some(credential.clone());
        let mut server = ScramServer::new(m);
        if let ScramStep::Challenge(_) = server.step(first, lookup) {
            let step = server.step(last, lookup);
            assert!(!matches!(step, ScramStep::Done { .. }), "authenticated without a proof");
        }
    }
});
