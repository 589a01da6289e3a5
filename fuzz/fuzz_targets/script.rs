//! The segment-script parser (packetdrill syntax) on arbitrary text: it
//! may refuse the text, never panic. A parsed script must also print
//! (`Debug`) without panicking, which walks every node the parser built.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Scripts are text; invalid UTF-8 goes through lossily so the fuzzer's
    // byte mutations still reach the lexer.
    let text = String::from_utf8_lossy(data);
    if let Ok(script) = tapir_script::parse(&text) {
        let _ = format!("{script:?}");
    }
});
