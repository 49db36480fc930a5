//! Length-prefixed frames on a stream socket: a u32 length (little-endian), then the bytes.

use std::io::{self, Read, Write};

/// Write one frame, in one write (one wake-up of the reader on the other end).
pub fn write_frame(to: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a frame over 4 GiB"))?;
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(bytes);
    to.write_all(&frame)?;
    to.flush()
}

/// Read one frame of at most `max` bytes; None at a clean end of the stream.
pub fn read_frame(from: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes, over the {max} allowed"),
        ));
    }
    let mut bytes = vec![0u8; len];
    from.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").unwrap();
        write_frame(&mut wire, b"").unwrap();
        let mut reader = wire.as_slice();
        assert_eq!(read_frame(&mut reader, 16).unwrap().unwrap(), b"hello");
        assert_eq!(read_frame(&mut reader, 16).unwrap().unwrap(), b"");
        assert!(read_frame(&mut reader, 16).unwrap().is_none());
        let mut big = Vec::new();
        write_frame(&mut big, &[0u8; 32]).unwrap();
        let error = read_frame(&mut big.as_slice(), 16).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a frame of 32 bytes, over the 16 allowed"
        );
        // A frame cut short is an error, not a clean end.
        assert!(read_frame(&mut &big[..10], 64).is_err());
    }
}
