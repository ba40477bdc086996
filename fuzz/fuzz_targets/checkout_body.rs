#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = greeter::fuzz::checkout_body(data);
});
