//! Response header names in the case Salesforce writes them over HTTP/1.1.
//!
//! HTTP says header names are case-insensitive, but some widely used clients look them
//! up case-sensitively (`Sforce-Locator`, `Content-Type`), and hyper writes every name in
//! lower case. hyper's title-case option gives `Content-Type`, `Sforce-Locator` and
//! `Sforce-Limit-Info`; the one name whose Salesforce spelling is not title case,
//! `Sforce-NumberOfRecords`, is mended on its way out by [`SalesforceHeaderCase`], which
//! rewrites the title-cased name where it starts a header line. The rewrite keeps the
//! length, so nothing else in the stream moves.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Header names whose Salesforce spelling differs from hyper's title case, as
/// (title-cased line start, Salesforce's line start).
const RESPELLED: &[(&[u8], &[u8])] = &[(
    b"\r\nSforce-Numberofrecords:",
    b"\r\nSforce-NumberOfRecords:",
)];

/// A connection whose written bytes get Salesforce's header spelling.
#[derive(Debug)]
pub struct SalesforceHeaderCase<S> {
    inner: S,
}

impl<S> SalesforceHeaderCase<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

/// The bytes with every respelled header name mended, or `None` when none occurs.
fn respell(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut fixed: Option<Vec<u8>> = None;
    for (title, salesforce) in RESPELLED {
        let mut start = 0;
        while let Some(at) = find(&bytes[start..], title) {
            let buffer = fixed.get_or_insert_with(|| bytes.to_vec());
            let position = start + at;
            buffer[position..position + salesforce.len()].copy_from_slice(salesforce);
            start = position + title.len();
        }
    }
    fixed
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl<S: AsyncRead + Unpin> AsyncRead for SalesforceHeaderCase<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SalesforceHeaderCase<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match respell(buf) {
            Some(fixed) => Pin::new(&mut self.inner).poll_write(cx, &fixed),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // hyper writes a response's head as its own slice; only heads hold header lines.
        let fixed: Vec<Option<Vec<u8>>> = bufs.iter().map(|b| respell(b)).collect();
        if fixed.iter().all(Option::is_none) {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        let slices: Vec<IoSlice<'_>> = bufs
            .iter()
            .zip(&fixed)
            .map(|(original, fixed)| IoSlice::new(fixed.as_deref().unwrap_or(original)))
            .collect();
        Pin::new(&mut self.inner).poll_write_vectored(cx, &slices)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::respell;

    #[test]
    fn only_the_title_cased_name_at_a_line_start_is_respelled() {
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nSforce-Numberofrecords: 3\r\n\r\n";
        let fixed = respell(head).expect("the header is respelled");
        assert_eq!(
            String::from_utf8_lossy(&fixed),
            "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nSforce-NumberOfRecords: 3\r\n\r\n"
        );
        assert!(respell(b"name,Sforce-Numberofrecords: 3\n").is_none());
    }
}
