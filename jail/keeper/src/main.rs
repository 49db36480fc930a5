//! `emperor-keeper`: what an idle vassal runtime becomes while nothing happens (docs/
//! PERFORMANCE.md, "Hibernation"). The runtime executes this image in its own process, so the
//! process keeps everything that makes it the vassal's runtime: its pid (pid 1 of the jail's
//! pid namespace, when there is one), its namespaces, credentials and capabilities, its child
//! the payload, its subreaper status, its blocked signals and every fd it chose to keep. The
//! keeper only waits. It reaps the orphans the payload leaves, and at the first thing that
//! needs the runtime (a signal other than SIGCHLD, the payload's exit, a byte or hang-up on
//! any fd it was told to watch) it executes the runtime again from the fd it was given, with
//! the runtime's own command line, and the runtime takes up its work where it left it.
//!
//! It reads nothing from any fd and parses nothing but its own command line, written by the
//! runtime: a payload can make it wake up, never make it do anything else. No libc: a
//! static, position-independent image whose only writable memory is its stack, so a
//! sleeping vassal costs the host a few pages.
//!
//! Usage: `emperor-keeper PAYLOAD_PID RUNTIME_FD WATCH_FDS RUNTIME_ARGV...`, where WATCH_FDS
//! is a comma-separated list of fd numbers or `-` for none.

#![no_std]
#![no_main]

use core::arch::global_asm;

mod sys;

/// The most fds it watches (the runtime's link, the payload's channel and output, and room).
const MAX_WATCHED: usize = 8;
const SIGCHLD: u32 = 17;

// The entry point: the kernel leaves argc, argv and envp on the stack; hand their address to
// `keeper_main` on a 16-byte aligned stack, as the C ABI wants.
#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call keeper_main",
    "ud2",
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, xzr",
    "mov x0, sp",
    "and sp, x0, #-16",
    "bl keeper_main",
    "brk #0",
);

/// What the command line says.
struct Args {
    payload: i32,
    runtime: i32,
    watched: [i32; MAX_WATCHED],
    watched_count: usize,
    /// The runtime's argv (NULL-terminated: the tail of ours) and our environment.
    runtime_argv: *const *const u8,
    envp: *const *const u8,
}

/// # Safety
/// Called once, by `_start`, with the stack the kernel set up for a new image: `argc`, then
/// `argc` argument pointers and a NULL, then the environment's pointers and a NULL.
#[no_mangle]
unsafe extern "C" fn keeper_main(stack: *const usize) -> ! {
    // SAFETY: the layout above is the kernel's ABI for execve; every pointer read is within
    // the argument and environment arrays it wrote.
    let args = unsafe {
        let argc = *stack;
        let argv = stack.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        parse(argc, argv, envp)
    };
    // The execve made this process dumpable; the runtime was not (the jail's step).
    sys::not_dumpable();
    match args {
        Some(args) => keep(&args),
        None => fail(
            b"usage: emperor-keeper PAYLOAD_PID RUNTIME_FD WATCH_FDS RUNTIME_ARGV...",
            0,
        ),
    }
}

/// # Safety
/// `argv` holds `argc` valid NUL-terminated strings followed by a NULL.
unsafe fn parse(argc: usize, argv: *const *const u8, envp: *const *const u8) -> Option<Args> {
    if argc < 5 {
        return None;
    }
    // SAFETY: indexes below argc, each a NUL-terminated string (the caller's contract).
    let word = |i: usize| unsafe { cstr(*argv.add(i)) };
    let mut args = Args {
        payload: number(word(1))?,
        runtime: number(word(2))?,
        watched: [-1; MAX_WATCHED],
        watched_count: 0,
        // SAFETY: 4 < argc, and the array's NULL ends the runtime's argv too.
        runtime_argv: unsafe { argv.add(4) },
        envp,
    };
    let list = word(3);
    if list != b"-" {
        for item in list.split(|&b| b == b',') {
            if args.watched_count == MAX_WATCHED {
                return None;
            }
            args.watched[args.watched_count] = number(item)?;
            args.watched_count += 1;
        }
    }
    Some(args)
}

/// The bytes of a NUL-terminated string.
///
/// # Safety
/// `p` points to a NUL-terminated string that outlives the returned slice.
unsafe fn cstr<'a>(p: *const u8) -> &'a [u8] {
    let mut len = 0;
    // SAFETY: reads up to and including the NUL the caller promises. The reads are volatile
    // so that the loop is not turned into a call to libc's strlen, which is not here.
    unsafe {
        while core::ptr::read_volatile(p.add(len)) != 0 {
            len += 1;
        }
        core::slice::from_raw_parts(p, len)
    }
}

/// A non-negative decimal that fits an i32.
fn number(text: &[u8]) -> Option<i32> {
    if text.is_empty() || text.len() > 9 {
        return None;
    }
    let mut n: i32 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i32::from(b - b'0');
    }
    Some(n)
}

/// Wait until the runtime is needed, then become it.
fn keep(args: &Args) -> ! {
    sys::set_name(b"emperor-keeper\0");
    // The runtime blocked the signals it reads from a signalfd; they stay blocked and
    // pending across execve. Watch the same set.
    let blocked = match sys::blocked_signals() {
        Ok(set) => set,
        Err(errno) => fail(b"rt_sigprocmask", errno),
    };
    // SIGCHLD too, whatever the runtime did: orphans are reaped here.
    let blocked = blocked | (1u64 << (SIGCHLD - 1));
    if let Err(errno) = sys::block(blocked) {
        fail(b"rt_sigprocmask", errno);
    }
    let signals = match sys::signalfd(blocked) {
        Ok(fd) => fd,
        Err(errno) => fail(b"signalfd4", errno),
    };
    let mut fds = [sys::PollFd::default(); MAX_WATCHED + 1];
    fds[0] = sys::PollFd::new(signals);
    for (slot, &fd) in fds[1..].iter_mut().zip(&args.watched[..args.watched_count]) {
        *slot = sys::PollFd::new(fd);
    }
    let watched = &mut fds[..=args.watched_count];
    loop {
        if runtime_needed(args.payload, blocked) {
            wake(args);
        }
        match sys::poll(watched) {
            Ok(()) => {}
            Err(sys::EINTR) => continue,
            Err(errno) => fail(b"ppoll", errno),
        }
        if watched[1..].iter().any(|fd| fd.revents != 0) {
            wake(args);
        }
    }
}

/// Whether a signal other than SIGCHLD is pending or the payload has exited; orphans that
/// exited meanwhile are reaped here (this process may be a pid namespace's init).
fn runtime_needed(payload: i32, blocked: u64) -> bool {
    let chld = 1u64 << (SIGCHLD - 1);
    let pending = sys::pending_signals();
    if pending & blocked & !chld != 0 {
        return true;
    }
    if pending & chld != 0 {
        sys::take_pending(chld);
    }
    loop {
        // Look without reaping: the payload's exit status is the runtime's to collect.
        match sys::exited_child() {
            None => return false,
            Some(pid) if pid == payload => return true,
            Some(orphan) => sys::reap(orphan),
        }
    }
}

/// Execute the runtime again. If that fails the vassal cannot be supervised any more: take
/// the payload down with this process rather than leave it behind unsupervised.
fn wake(args: &Args) -> ! {
    let errno = sys::execute(args.runtime, args.runtime_argv, args.envp);
    sys::kill_group(args.payload);
    fail(b"execveat(the runtime's fd)", errno)
}

/// Say which call failed (on stderr, the emperor's log) and exit.
fn fail(what: &[u8], errno: i32) -> ! {
    let mut line = [0u8; 128];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if len < line.len() {
                line[len] = b;
                len += 1;
            }
        }
    };
    put(b"emperor-keeper: ");
    put(what);
    if errno != 0 {
        put(b": errno ");
        let mut digits = [0u8; 10];
        let mut n = errno.unsigned_abs();
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        put(&digits[i..]);
    }
    put(b"\n");
    sys::write_stderr(&line[..len]);
    sys::exit(1)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    sys::exit(101)
}
