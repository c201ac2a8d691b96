//! The ABI from Rust: status codes and their strings, the per-thread error message,
//! the constructors' argument checks.

use std::ffi::CStr;
use std::ptr;

use shmring_c::*;

fn text(p: *const std::ffi::c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: the library returns NUL-terminated strings that live long enough.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn status_codes_are_distinct_and_named() {
    let codes: Vec<i32> = shmring_status::ALL.iter().map(|s| s.code()).collect();
    assert_eq!(codes[0], 0);
    for (i, code) in codes.iter().enumerate() {
        assert!(i == 0 || *code < 0, "{code}");
        assert_eq!(codes.iter().filter(|c| *c == code).count(), 1, "{code}");
        assert_eq!(
            shmring_status::from_code(*code).map(|s| s.code()),
            Some(*code)
        );
        assert_ne!(text(shmring_strerror(*code)), "unknown status code");
    }
    // The codes the issue names keep their order (and so their values).
    assert_eq!(shmring_status::E_INVALID_ARGUMENT.code(), -1);
    assert_eq!(shmring_status::E_PANIC.code(), -19);
    assert_eq!(text(shmring_strerror(1)), "unknown status code");
    assert_eq!(text(shmring_strerror(i32::MIN)), "unknown status code");
}

#[test]
fn version_matches_the_package() {
    assert_eq!(text(shmring_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(shmring_layout_version(), SHMRING_LAYOUT_VERSION);
}

#[test]
fn last_error_message_is_per_thread() {
    let mut channel = ptr::dangling_mut();
    // SAFETY: a NULL name and a writable out-pointer.
    let rc = unsafe { shmring_channel_open(ptr::null(), ptr::null(), &mut channel) };
    assert_eq!(rc, shmring_status::E_INVALID_ARGUMENT.code());
    assert!(channel.is_null(), "*out is cleared on failure");
    assert_eq!(text(shmring_last_error_message()), "name is NULL");
    std::thread::spawn(|| assert_eq!(text(shmring_last_error_message()), ""))
        .join()
        .unwrap();
    // SAFETY: a valid name and options; NULL out-pointer (refused).
    let rc = unsafe { shmring_channel_create(c"x".as_ptr(), 4096, ptr::null(), ptr::null_mut()) };
    assert_eq!(rc, shmring_status::E_INVALID_ARGUMENT.code());
    assert_eq!(text(shmring_last_error_message()), "out is NULL");
}

#[test]
fn memfd_round_trip_from_rust_through_the_c_abi() {
    let mut channel = ptr::null_mut();
    let mut tx = ptr::null_mut();
    let mut rx = ptr::null_mut();
    let mut buf = [0u8; 16];
    let mut len = 0usize;
    // SAFETY: valid out-pointers, live handles, buffers of the lengths given.
    unsafe {
        assert_eq!(
            shmring_channel_create_memfd(4096, ptr::null(), &mut channel),
            0
        );
        assert_eq!(shmring_sender_new(channel, &mut tx), 0);
        assert_eq!(shmring_receiver_new(channel, &mut rx), 0);
        assert_eq!(shmring_channel_close(channel), 0);
        assert_eq!(
            shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), b"hi".as_ptr().cast(), 2),
            0
        );
        let rc = shmring_msg_receiver_try_recv(
            shmring_receiver_as_msg_receiver(rx),
            buf.as_mut_ptr().cast(),
            1,
            &mut len,
        );
        assert_eq!(rc, shmring_status::E_BUFFER_TOO_SMALL.code());
        assert_eq!(len, 2);
        let rc = shmring_msg_receiver_try_recv(
            shmring_receiver_as_msg_receiver(rx),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut len,
        );
        assert_eq!((rc, &buf[..len]), (0, &b"hi"[..]));
        assert_eq!(shmring_sender_close(tx), 0);
        assert_eq!(shmring_receiver_close(rx), 0);
    }
}
