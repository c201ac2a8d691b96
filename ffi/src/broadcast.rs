//! Broadcast topics: one publisher, many subscribers, each of which sees every
//! message. A topic (`shmring_topic`) is made or opened, then gives a publisher
//! (`shmring_publisher_new`) or subscribers (`shmring_subscriber_new`); those
//! send and receive through the message family (`shmring_publisher_as_msg_sender`,
//! `shmring_subscriber_as_msg_receiver`).
//!
//! A subscriber the publisher lapped (a lossy topic, or a gated one that cut it
//! off) gets `SHMRING_E_LAGGED` from a receive, with the number of messages it
//! missed in `*out_len`; the next receive returns the oldest message still held.
//!
//! On a strict topic the publisher may write in place (`shmring_publisher_grant`,
//! `_commit`, `_abort`) and subscribers may read in place
//! (`shmring_subscriber_read`, `_release`, `_unread`), as an SPSC channel's sender
//! and receiver do; on the other policies those calls return
//! `SHMRING_E_UNSUPPORTED`.

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;
use std::time::Duration;

use shmring::broadcast::{BroadcastBuilder, Policy, Publisher, Start, Subscriber, Topic};

use crate::channel::{builder, shmring_channel_options};
use crate::handle::{
    Access, Header, Kind, c_name, call_in, call_ref, close, construct, dup_fd, shared, timeout,
    write_out,
};
use crate::loan::{Lends, check_commit, end_loan, grant_with, granted, lent, read_with, take_loan};
use crate::message::{
    Endpoint, ReadinessInfo, Receiving, Sending, shmring_msg_receiver, shmring_msg_sender,
};
use crate::status::{Failure, guard, shmring_status};

/// A broadcast topic: its two segments, the data and the subscriber table. Gives
/// the publisher and subscribers; they keep the topic's memory mapped, so it may
/// be closed once they are made.
///
/// Thread-safe: several threads may make publishers and subscribers from it at
/// once.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_topic {
    _opaque: [u8; 0],
}

/// The one publisher of a topic. Sends through its `shmring_msg_sender` view.
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_publisher {
    _opaque: [u8; 0],
}

/// A subscriber of a topic. Receives through its `shmring_msg_receiver` view.
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_subscriber {
    _opaque: [u8; 0],
}

/// What a topic does when a subscriber falls a whole data region behind.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmring_policy {
    /// The publisher never waits; a lapped subscriber gets `SHMRING_E_LAGGED`.
    POLICY_LOSSY = 0,
    /// The publisher waits for the slowest live subscriber, frees a dead one's
    /// slot, and cuts off a live one that has not moved within
    /// `cut_off_after_ms` (it then reads as a lossy subscriber does).
    POLICY_GATED = 1,
    /// As gated, without the cut-off: the publisher waits for every live
    /// subscriber as long as it lives.
    POLICY_STRICT = 2,
}

/// Where a new subscriber starts.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmring_start {
    /// With the next message published.
    START_NEWEST = 0,
    /// With the oldest message the topic still holds (its history).
    START_OLDEST = 1,
}

/// The shape of a new topic. Fill it with `shmring_topic_config_init`, then set
/// what differs.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmring_topic_config {
    /// Bytes of the data region: a power of two from 64 bytes to 512 MiB; the
    /// largest message is half of it less 16 bytes. Default 64 KiB.
    pub capacity: usize,
    /// A `shmring_policy`. Default `SHMRING_POLICY_LOSSY` (as the Rust builder's).
    pub policy: u32,
    /// Subscriber slots: how many subscribers may be joined at once, 1 to 256.
    /// Default 16.
    pub subscriber_slots: u32,
    /// Gated topics: milliseconds a live subscriber may hold the publisher back
    /// without moving before it is cut off. Default 1000.
    pub cut_off_after_ms: u32,
    /// Must be 0.
    pub reserved: u32,
}

impl Default for shmring_topic_config {
    fn default() -> Self {
        Self {
            capacity: 64 * 1024,
            policy: shmring_policy::POLICY_LOSSY as u32,
            subscriber_slots: 16,
            cut_off_after_ms: 1000,
            reserved: 0,
        }
    }
}

impl shmring_topic_config {
    fn apply(&self, builder: BroadcastBuilder) -> Result<BroadcastBuilder, Failure> {
        let policy = match self.policy {
            0 => Policy::Lossy,
            1 => Policy::Gated,
            2 => Policy::Strict,
            other => return Err(Failure::invalid(format!("unknown policy {other}"))),
        };
        if self.reserved != 0 {
            return Err(Failure::invalid(format!(
                "reserved field of shmring_topic_config is {}, must be 0",
                self.reserved
            )));
        }
        Ok(builder
            .capacity(self.capacity)
            .policy(policy)
            .subscriber_slots(self.subscriber_slots as usize)
            .cut_off_after(Duration::from_millis(self.cut_off_after_ms.into())))
    }
}

/// The value of a `shmring_topic` handle. Shared (`call_ref` only).
#[derive(Debug)]
pub(crate) struct TopicValue {
    topic: Topic,
}

/// The value of a `shmring_publisher` handle.
#[derive(Debug)]
pub(crate) struct PublisherValue {
    publisher: Publisher,
    readiness: ReadinessInfo,
    /// The outstanding grant (state `Borrowed`): its bytes' address and length.
    /// Nothing borrows `publisher` meanwhile: the commit asks for the same grant
    /// again (the publisher's next frame stays where it was; on a strict topic
    /// only subscribers move, freeing room) and commits that.
    grant: Option<(usize, usize)>,
}

/// The value of a `shmring_subscriber` handle.
#[derive(Debug)]
pub(crate) struct SubscriberValue {
    subscriber: Subscriber,
    readiness: ReadinessInfo,
    /// The outstanding read (state `Borrowed`): its bytes' address and length.
    /// As the publisher's grant: the release reads the same message again.
    read: Option<(usize, usize)>,
}

impl Kind for TopicValue {
    type C = shmring_topic;
    const WHAT: &'static str = "topic";
}

impl Kind for PublisherValue {
    type C = shmring_publisher;
    const WHAT: &'static str = "publisher";
    const LENDS: &'static str = "grant";
    const FINISH: &'static str = "commit or abort the outstanding grant";
    const ENDPOINT: bool = true;
}

impl Kind for SubscriberValue {
    type C = shmring_subscriber;
    const WHAT: &'static str = "subscriber";
    const LENDS: &'static str = "read";
    const FINISH: &'static str = "release or unread the outstanding read";
    const ENDPOINT: bool = true;
}

impl Lends for PublisherValue {
    fn loan(&mut self) -> &mut Option<(usize, usize)> {
        &mut self.grant
    }
}

impl Lends for SubscriberValue {
    fn loan(&mut self) -> &mut Option<(usize, usize)> {
        &mut self.read
    }
}

impl Endpoint for TopicValue {}

impl Endpoint for PublisherValue {
    fn sending(&mut self) -> Option<&mut dyn Sending> {
        Some(self)
    }
}

impl Endpoint for SubscriberValue {
    fn receiving(&mut self) -> Option<&mut dyn Receiving> {
        Some(self)
    }
}

/// The publisher's own doorbell (`Publisher::readiness_fd`): rung by subscribers
/// that move and by the watcher (a dead holder, a due cut-off).
impl Sending for PublisherValue {
    fn sender(&mut self) -> &mut dyn shmring::MessageSender {
        &mut self.publisher
    }
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Ok(&self.readiness)
    }
    fn arm_for_space(&mut self, len: usize) -> Result<shmring::Readiness, Failure> {
        Ok(self.publisher.arm_for_space(len)?)
    }
}

/// The subscriber's own doorbell (`Subscriber::readiness_fd`).
impl Receiving for SubscriberValue {
    fn receiver(&mut self) -> &mut dyn shmring::MessageReceiver {
        &mut self.subscriber
    }
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Ok(&self.readiness)
    }
    fn arm_for_message(&mut self) -> Result<shmring::Readiness, Failure> {
        Ok(self.subscriber.arm_for_message()?)
    }
}

/// Fills `*config` with the defaults: 64 KiB, lossy, 16 subscriber slots, cut-off
/// after 1000 ms (for gated topics).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` if `config` is NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_topic_config_init(config: *mut shmring_topic_config) -> c_int {
    // SAFETY: the caller's contract.
    guard(|| unsafe { write_out(config, "config", shmring_topic_config::default()) })
}

/// The config at `config` (NULL: the defaults).
///
/// # Safety
/// `config` is NULL or points to a readable `shmring_topic_config`.
unsafe fn config_or_default(config: *const shmring_topic_config) -> shmring_topic_config {
    // SAFETY: NULL or readable and aligned (the caller's contract); every bit
    // pattern of its integer fields is valid.
    unsafe { config.as_ref() }.copied().unwrap_or_default()
}

/// Creates a topic in named POSIX shared memory: the data segment
/// `/dev/shm/shmring.<name>` and the subscriber table `/dev/shm/shmring.<name>.subs`,
/// made and removed together. The data segment is created with `options.mode`
/// (default `0600`): subscribers map it read-only, and only the publisher writes
/// it; subscribers write the table. A subscriber of the same user can truncate
/// the files (the publisher's next access then raises `SIGBUS`): for subscribers
/// you do not trust, use `shmring_topic_create_memfd`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_CAPACITY` (capacity or subscriber slots out of
/// range), `SHMRING_E_INVALID_NAME`, `SHMRING_E_ALREADY_EXISTS`,
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_NO_SPACE`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT` (an unknown policy, a non-zero reserved field).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_topic_create(
    name: *const c_char,
    config: *const shmring_topic_config,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_topic,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name`, `config` and `options`.
        let builder = unsafe { builder(BroadcastBuilder::shm(c_name(name)?), options) }?;
        // SAFETY: as above.
        let builder = unsafe { config_or_default(config) }.apply(builder)?;
        Ok(TopicValue {
            topic: builder.create()?,
        })
    })
}

/// Creates a topic in two anonymous memfds (no name anywhere). The data memfd is
/// sealed against writes once this process mapped it (`F_SEAL_FUTURE_WRITE`), and
/// both against resizing: a process it is handed to can subscribe but never write
/// the data, nor publish. Hand it over with `shmring_topic_fds`; open it with
/// `shmring_topic_open_fds`.
///
/// # Returns
/// As `shmring_topic_create`, without the name errors.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_topic_create_memfd(
    config: *const shmring_topic_config,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_topic,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { builder(BroadcastBuilder::memfd(), options) }?;
        // SAFETY: the caller's contract on `config`.
        let builder = unsafe { config_or_default(config) }.apply(builder)?;
        Ok(TopicValue {
            topic: builder.create()?,
        })
    })
}

/// Opens the topic `name` made by `shmring_topic_create` (its shape is read from
/// it). The two segments must belong together (the same topic id).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_FOUND`, `SHMRING_E_INVALID_NAME`,
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_UNTRUSTED`,
/// `SHMRING_E_INCOMPATIBLE_LAYOUT`, `SHMRING_E_CORRUPTED` (a mismatched pair),
/// `SHMRING_E_BAD_SIZE`, `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_topic_open(
    name: *const c_char,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_topic,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { builder(BroadcastBuilder::shm(c_name(name)?), options) }?;
        Ok(TopicValue {
            topic: builder.open()?,
        })
    })
}

/// Opens the topic behind the descriptors `data_fd` and `table_fd` (from
/// `shmring_topic_fds` in another process). The library duplicates both; the
/// caller keeps its own.
///
/// # Returns
/// As `shmring_topic_open`, without the name errors.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_topic_open_fds(
    data_fd: c_int,
    table_fd: c_int,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_topic,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { builder(BroadcastBuilder::memfd(), options) }?;
        Ok(TopicValue {
            topic: builder.from_fds(dup_fd(data_fd)?, dup_fd(table_fd)?)?,
        })
    })
}

/// Stores the topic's two descriptors (the data segment's and the table's) in
/// `*out_data_fd` and `*out_table_fd`: the topic's own, close-on-exec; do not close
/// them; valid until `shmring_topic_close`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_topic_fds(
    topic: *const shmring_topic,
    out_data_fd: *mut c_int,
    out_table_fd: *mut c_int,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(topic, |t: &TopicValue| {
            let (data, table) = t.topic.fds();
            write_out(out_data_fd, "out_data_fd", data.as_raw_fd())?;
            write_out(out_table_fd, "out_table_fd", table.as_raw_fd())
        })
    }
}

/// Stores the topic's shape in `*out` (capacity, policy, subscriber slots; the
/// cut-off bound as made).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_topic_config_get(
    topic: *const shmring_topic,
    out: *mut shmring_topic_config,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(topic, |t: &TopicValue| {
            let policy = match t.topic.policy() {
                Policy::Lossy => shmring_policy::POLICY_LOSSY,
                Policy::Gated => shmring_policy::POLICY_GATED,
                Policy::Strict => shmring_policy::POLICY_STRICT,
            };
            let config = shmring_topic_config {
                capacity: t.topic.capacity(),
                policy: policy as u32,
                subscriber_slots: t.topic.subscriber_slots() as u32,
                cut_off_after_ms: u32::try_from(t.topic.cut_off_after().as_millis())
                    .unwrap_or(u32::MAX),
                reserved: 0,
            };
            write_out(out, "out", config)
        })
    }
}

/// Frees a topic handle (NULL: nothing). Publishers and subscribers made from it
/// stay usable. The creator's last handle on a named topic removes its names
/// unless `SHMRING_OPTION_KEEP`.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_topic_close(topic: *mut shmring_topic) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<TopicValue>(topic) }
}

/// Claims the topic's publisher. A topic has one: a second claim fails while the
/// first lives; after its holder died, a new publisher continues where it
/// stopped (no gap, no duplicate). On a memfd topic, only the creating process
/// can publish (the data is sealed against every later mapping for writing).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_ROLE_TAKEN`, `SHMRING_E_PERMISSION_DENIED`,
/// `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_publisher_new(
    topic: *const shmring_topic,
    out: *mut *mut shmring_publisher,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let publisher = unsafe { shared::<TopicValue>(topic) }?.topic.publisher()?;
        let readiness = ReadinessInfo::new(publisher.readiness_fd(), publisher.wakeups());
        Ok(PublisherValue {
            publisher,
            readiness,
            grant: None,
        })
    })
}

/// Stores in `*out` how many subscribers are joined now (a dead one counts until
/// the publisher frees its slot): what the last message reached.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_publisher_subscribers(
    publisher: *const shmring_publisher,
    out: *mut u32,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(publisher, |p: &PublisherValue| {
            write_out(out, "out", p.publisher.subscribers())
        })
    }
}

/// Lends `len` bytes of a strict topic's data region, if there is room now, to
/// write a message in place: `*out_data` receives their address (8-byte
/// aligned; they hold whatever was there before). Never blocks, but frees the
/// slot of a dead subscriber that holds the publisher back.
///
/// The bytes are the caller's until `shmring_publisher_commit` (publishes a
/// message) or `shmring_publisher_abort` (publishes nothing); until then every
/// other call on this publisher returns `SHMRING_E_BUSY`, but
/// `shmring_publisher_close` and `shmring_publisher_subscribers`. After it, the
/// pointer is invalid.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_FULL` (a live subscriber has not read what the
/// message would overwrite), `SHMRING_E_MESSAGE_TOO_LARGE`,
/// `SHMRING_E_CORRUPTED`, `SHMRING_E_UNSUPPORTED` (the topic is not strict),
/// `SHMRING_E_BUSY` (a grant is already outstanding),
/// `SHMRING_E_INVALID_ARGUMENT`. On failure `*out_data` is NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_publisher_try_grant(
    publisher: *mut shmring_publisher,
    len: usize,
    out_data: *mut *mut u8,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        grant_with(publisher, len, out_data, |h: &mut PublisherValue, len| {
            h.publisher.try_grant(len).map(granted)
        })
    }
}

/// As `shmring_publisher_try_grant`, waiting for room (freeing the slots of dead
/// subscribers; a live one is waited for as long as it lives).
///
/// # Returns
/// As `shmring_publisher_try_grant` but `SHMRING_E_FULL`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_publisher_grant(
    publisher: *mut shmring_publisher,
    len: usize,
    out_data: *mut *mut u8,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        grant_with(publisher, len, out_data, |h: &mut PublisherValue, len| {
            h.publisher.grant(len).map(granted)
        })
    }
}

/// As `shmring_publisher_grant`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_publisher_grant_timeout(
    publisher: *mut shmring_publisher,
    len: usize,
    timeout_ms: u64,
    out_data: *mut *mut u8,
) -> c_int {
    let timeout = timeout(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        grant_with(publisher, len, out_data, |h: &mut PublisherValue, len| {
            h.publisher.grant_timeout(len, timeout).map(granted)
        })
    }
}

/// Publishes the first `len` bytes of the outstanding grant as one message (`len`
/// may be less than granted) and wakes the parked subscribers;
/// `shmring_publisher_subscribers` then says how many it reached. The grant's
/// pointer is invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no grant outstanding);
/// `SHMRING_E_INVALID_ARGUMENT` if `len` exceeds the grant (the grant stays
/// outstanding); `SHMRING_E_CORRUPTED` if the frame moved (nothing committed).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_publisher_commit(
    publisher: *mut shmring_publisher,
    len: usize,
) -> c_int {
    let body = |h: &mut PublisherValue, header: &Header| {
        check_commit(len, h.grant.unwrap_or_default().1)?;
        let (data, granted) = take_loan(h, header);
        // The same grant again: the frame the first one reserved, with the room
        // found then (the publisher keeps the floor it moved).
        let mut grant = h.publisher.try_grant(granted)?;
        if grant.as_mut_ptr() as usize != data {
            return Err(Failure::new(
                shmring_status::E_CORRUPTED,
                "the data region moved under the outstanding grant: nothing committed",
            ));
        }
        grant.commit(len);
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call_in(publisher, Access::Borrowed, body) }
}

/// Gives the outstanding grant back without publishing anything. The grant's
/// pointer is invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no grant outstanding).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_publisher_abort(publisher: *mut shmring_publisher) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { end_loan::<PublisherValue>(publisher) }
}

/// The publisher as a `shmring_msg_sender`, for the message family's copying
/// sends (`SHMRING_E_FULL` on a gated topic means a live subscriber has not read;
/// the blocking forms wait for it, free a dead one's slot and cut off one that does
/// not move within the topic's bound) and readiness calls: its descriptor (a named
/// topic's: the table's space FIFO; a memfd topic's is polled) becomes readable
/// after `shmring_msg_sender_arm_for_space` returned `SHMRING_ARMED` when a
/// subscriber moves or leaves, when the one holding it back dies, or (gated) when
/// that one's cut-off comes due; arming again then frees its slot or cuts it off.
/// A lossy publisher's arming always says `SHMRING_READY`. The same handle: close
/// `publisher`, never the view. NULL for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_publisher_as_msg_sender(
    publisher: *mut shmring_publisher,
) -> *mut shmring_msg_sender {
    publisher.cast()
}

/// Gives the publisher's claim back and frees the handle (NULL: nothing).
/// Subscribers receive everything it published, then `SHMRING_E_DISCONNECTED`
/// until a new publisher claims the topic.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_publisher_close(publisher: *mut shmring_publisher) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<PublisherValue>(publisher) }
}

/// Joins the topic as a subscriber in a free slot, starting at `start` (a
/// `shmring_start`).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_TABLE_FULL` (every slot is held by a live
/// subscriber), `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT` (an unknown `start`).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_subscriber_new(
    topic: *const shmring_topic,
    start: u32,
    out: *mut *mut shmring_subscriber,
) -> c_int {
    construct(out, || {
        let start = match start {
            0 => Start::Newest,
            1 => Start::Oldest,
            other => return Err(Failure::invalid(format!("unknown start {other}"))),
        };
        // SAFETY: the caller's contract.
        let subscriber = unsafe { shared::<TopicValue>(topic) }?
            .topic
            .subscriber(start)?;
        let readiness = ReadinessInfo::new(subscriber.readiness_fd(), subscriber.wakeups());
        Ok(SubscriberValue {
            subscriber,
            readiness,
            read: None,
        })
    })
}

/// Stores the sequence number of the next message the subscriber will read in
/// `*out` (messages are numbered from 1 on each topic).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_subscriber_next_seq(
    subscriber: *const shmring_subscriber,
    out: *mut u64,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(subscriber, |s: &SubscriberValue| {
            write_out(out, "out", s.subscriber.next_seq())
        })
    }
}

/// Borrows the next message of a strict topic in place, if there is one now;
/// never blocks. `*out_data` and `*out_len` receive its address (in the
/// subscriber's read-only mapping) and length.
///
/// The bytes stay valid, and the publisher does not overwrite them, until
/// `shmring_subscriber_release` (moves past the message) or
/// `shmring_subscriber_unread` (leaves it to be read again); until then every
/// other call on this subscriber returns `SHMRING_E_BUSY`, but
/// `shmring_subscriber_close` and `shmring_subscriber_next_seq`. A read held
/// forever holds the publisher back forever (unless this process dies: then the
/// publisher frees its slot). A hostile publisher could change the bytes while
/// you read them: copy before validating, if that matters.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_EMPTY`, `SHMRING_E_DISCONNECTED`,
/// `SHMRING_E_CORRUPTED`, `SHMRING_E_UNSUPPORTED` (the topic is not strict),
/// `SHMRING_E_BUSY` (a read is already outstanding),
/// `SHMRING_E_INVALID_ARGUMENT`. On failure `*out_data` is NULL and `*out_len` 0.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_subscriber_try_read(
    subscriber: *mut shmring_subscriber,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        read_with(subscriber, out_data, out_len, |h: &mut SubscriberValue| {
            h.subscriber.try_read().map(lent)
        })
    }
}

/// As `shmring_subscriber_try_read`, waiting for a message.
///
/// # Returns
/// As `shmring_subscriber_try_read` but `SHMRING_E_EMPTY`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_subscriber_read(
    subscriber: *mut shmring_subscriber,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        read_with(subscriber, out_data, out_len, |h: &mut SubscriberValue| {
            h.subscriber.read().map(lent)
        })
    }
}

/// As `shmring_subscriber_read`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_subscriber_read_timeout(
    subscriber: *mut shmring_subscriber,
    timeout_ms: u64,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    let timeout = timeout(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        read_with(subscriber, out_data, out_len, |h: &mut SubscriberValue| {
            h.subscriber.read_timeout(timeout).map(lent)
        })
    }
}

/// Moves past the outstanding read message (the publisher may reuse its bytes)
/// and wakes a publisher waiting for room. Its pointer is invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no read outstanding);
/// `SHMRING_E_CORRUPTED` if the message changed (nothing released).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_subscriber_release(subscriber: *mut shmring_subscriber) -> c_int {
    let body = |h: &mut SubscriberValue, header: &Header| {
        let (data, len) = take_loan(h, header);
        // The same message again: still the next, as only we move our cursor.
        let message = h.subscriber.try_read()?;
        if (message.as_ptr() as usize, message.len()) != (data, len) {
            return Err(Failure::new(
                shmring_status::E_CORRUPTED,
                "the message read changed before its release (a hostile publisher?): nothing released",
            ));
        }
        message.release();
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call_in(subscriber, Access::Borrowed, body) }
}

/// Ends the outstanding read without moving past the message: the next read or
/// receive returns it again. Its pointer is invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no read outstanding).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_subscriber_unread(subscriber: *mut shmring_subscriber) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { end_loan::<SubscriberValue>(subscriber) }
}

/// The subscriber as a `shmring_msg_receiver`, for the message family's copying
/// receives and readiness calls. A receive that finds the subscriber lapped returns
/// `SHMRING_E_LAGGED` with the number of messages missed in `*out_len`; the next
/// receive returns the oldest message still held. Its readiness descriptor is
/// its own (a named topic's: a FIFO per subscriber slot; a memfd topic's is
/// polled). The same handle: close
/// `subscriber`, never the view. NULL for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_subscriber_as_msg_receiver(
    subscriber: *mut shmring_subscriber,
) -> *mut shmring_msg_receiver {
    subscriber.cast()
}

/// Leaves the topic (frees the slot) and frees the handle (NULL: nothing).
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_subscriber_close(subscriber: *mut shmring_subscriber) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<SubscriberValue>(subscriber) }
}
