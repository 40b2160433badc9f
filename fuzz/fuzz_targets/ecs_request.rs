//! ECS API requests: the first byte picks an operation, the rest is its
//! body. Every input is answered with a result or a client error (4xx),
//! never a panic or a ServerException.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    estiba_cluster::api::fuzzing::one_input(data);
});
