//! The Docker API's container-create body: any input becomes a request or
//! a client error (4xx), never a panic or a server error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = estiba_docker::parse_create(data, None) {
        assert!(e.status.is_client_error(), "{}: {}", e.status, e.message);
    }
});
