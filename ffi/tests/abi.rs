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

/// Grants and reads keep no borrow between the calls: the commit (release) asks
/// for the same frame again. Across many laps of a small ring (padding at every
/// wrap) and with the receiver moving between a grant and its commit, every
/// message arrives whole, where it was written.
#[test]
fn grants_and_reads_survive_wraps_and_a_moving_peer() {
    let mut channel = ptr::null_mut();
    let (mut tx, mut rx) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid out-pointers, live handles, and the grant's and the read's
    // bytes used only between the grant (read) and its commit (release).
    unsafe {
        assert_eq!(
            shmring_channel_create_memfd(256, ptr::null(), &mut channel),
            0
        );
        assert_eq!(shmring_sender_new(channel, &mut tx), 0);
        assert_eq!(shmring_receiver_new(channel, &mut rx), 0);
        assert_eq!(shmring_channel_close(channel), 0);
        let (mut data, mut read, mut len) = (ptr::null_mut(), ptr::null(), 0usize);
        // One message stays queued, so the receiver releases it while the next
        // grant is outstanding.
        assert_eq!(shmring_sender_try_grant(tx, 8, &mut data), 0);
        data.write_bytes(0xee, 8);
        assert_eq!(shmring_sender_commit(tx, 8), 0);
        for i in 0..3000usize {
            let want = 2 + i * 7 % 48;
            assert_eq!(
                shmring_sender_try_grant(tx, want, &mut data),
                0,
                "grant {i}"
            );
            let busy =
                shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), ptr::null(), 0);
            assert_eq!(busy, shmring_status::E_BUSY.code());
            for k in 0..want {
                data.add(k).write((i + k) as u8);
            }
            // The receiver takes the older message while the grant is out.
            assert_eq!(shmring_receiver_try_read(rx, &mut read, &mut len), 0);
            assert_eq!(shmring_receiver_release(rx), 0);
            assert_eq!(shmring_sender_commit(tx, want - 1), 0, "commit {i}");
            assert_eq!(shmring_receiver_try_read(rx, &mut read, &mut len), 0);
            let got = std::slice::from_raw_parts(read, len);
            let expected: Vec<u8> = (0..want - 1).map(|k| (i + k) as u8).collect();
            assert_eq!(got, &expected[..], "message {i}");
            // Unread, then read again: the same message, then released.
            assert_eq!(shmring_receiver_unread(rx), 0);
            assert_eq!(shmring_receiver_try_read(rx, &mut read, &mut len), 0);
            assert_eq!(std::slice::from_raw_parts(read, len), &expected[..]);
            assert_eq!(shmring_receiver_unread(rx), 0);
        }
        assert_eq!(
            shmring_sender_abort(tx),
            shmring_status::E_NOT_BORROWED.code()
        );
        assert_eq!(shmring_sender_close(tx), 0);
        assert_eq!(shmring_receiver_close(rx), 0);
    }
}

/// A size beyond `PTRDIFF_MAX` is an invalid argument everywhere (the documented
/// code), before the handle's own limit ("message too large") is looked at.
#[test]
fn sizes_beyond_ptrdiff_max_are_invalid_arguments() {
    let mut channel = ptr::null_mut();
    let (mut tx, mut rx) = (ptr::null_mut(), ptr::null_mut());
    let huge = isize::MAX as usize + 1;
    let mut data = ptr::null_mut();
    let mut len = 7usize;
    // SAFETY: valid out-pointers and live handles; the wild sizes are refused
    // before any byte is touched.
    unsafe {
        assert_eq!(
            shmring_channel_create_memfd(4096, ptr::null(), &mut channel),
            0
        );
        assert_eq!(shmring_sender_new(channel, &mut tx), 0);
        assert_eq!(shmring_receiver_new(channel, &mut rx), 0);
        assert_eq!(shmring_channel_close(channel), 0);
        let out = shmring_sender_as_msg_sender(tx);
        let invalid = shmring_status::E_INVALID_ARGUMENT.code();
        assert_eq!(
            shmring_msg_sender_try_send(out, b"x".as_ptr().cast(), huge),
            invalid
        );
        assert_eq!(
            shmring_msg_sender_send_timeout(out, b"x".as_ptr().cast(), huge, 0),
            invalid
        );
        assert_eq!(shmring_sender_try_grant(tx, huge, &mut data), invalid);
        assert!(data.is_null());
        let mut buf = [0u8; 8];
        let inb = shmring_receiver_as_msg_receiver(rx);
        assert_eq!(
            shmring_msg_receiver_try_recv(inb, buf.as_mut_ptr().cast(), huge, &mut len),
            invalid
        );
        assert_eq!(len, 0);
        let too_large = shmring_status::E_MESSAGE_TOO_LARGE.code();
        assert_eq!(
            shmring_msg_sender_try_send(out, b"x".as_ptr().cast(), 4096),
            too_large
        );
        assert_eq!(shmring_sender_close(tx), 0);
        assert_eq!(shmring_receiver_close(rx), 0);
    }
}
