//! Walking a list endpoint page by page.
//!
//! The stream stops at whichever comes first:
//! * `current_page * page_size >= total_count` (REFERENCE §2.1);
//! * an empty page (2.4 answers past the end with `items: []`);
//! * a page identical to the previous one (2.3 clamps `currentPage` to the
//!   last page and repeats it forever);
//! * a short page when the store sent no usable `total_count`;
//! * an error (yielded, then the stream ends).
//!
//! Once the first page has told us the total, up to `concurrency` further
//! pages are fetched at once; they are still yielded in order, and pages
//! fetched beyond a stop are dropped.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, FuturesOrdered, StreamExt};

use super::{Call, MagentoClient};
use crate::error::MagentoError;
use crate::models::PageSummary;
use crate::search::{SearchCriteria, SortDirection};

/// How to walk pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageStreamOptions {
    /// `None` uses the criteria's `pageSize`, else the client default.
    pub page_size: Option<NonZeroU32>,
    /// Pages in flight at once (the client's limits still apply).
    pub concurrency: NonZeroUsize,
}

/// A page body exactly as downloaded, with just enough read from it to page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage {
    pub current_page: u32,
    pub body: Bytes,
    pub total_count: Option<u64>,
    pub item_count: usize,
}

type Decoder<P> = Arc<dyn Fn(Bytes, u32) -> Result<(P, PageSummary), String> + Send + Sync>;
type PageFuture<P> = BoxFuture<'static, Result<(u32, P, PageSummary), MagentoError>>;

/// How page bodies are decoded.
pub(crate) enum DecodeOn {
    /// On the blocking pool: full parses of large pages overlap downloads.
    BlockingPool,
    /// Inline: cheap decoders.
    Inline,
}

pub(crate) struct Pager<P> {
    client: MagentoClient,
    template: Call,
    criteria: SearchCriteria,
    page_size: u32,
    concurrency: usize,
    decode: Decoder<P>,
    decode_on: DecodeOn,
    next_page: u32,
    last_page: Option<u32>,
    in_flight: FuturesOrdered<PageFuture<P>>,
    previous_fingerprint: Option<u64>,
    finished: bool,
}

impl<P: Send + 'static> Pager<P> {
    /// `template` is the list call without `searchCriteria`; `criteria`
    /// gains a stable sort (`entity_id`) when it has none.
    pub(crate) fn new(
        client: MagentoClient,
        template: Call,
        criteria: SearchCriteria,
        options: PageStreamOptions,
        decode: Decoder<P>,
        decode_on: DecodeOn,
    ) -> Self {
        let page_size = options
            .page_size
            .or(criteria.page_size.and_then(NonZeroU32::new))
            .unwrap_or(client.inner.default_page_size)
            .get();
        let mut criteria = criteria;
        if criteria.sort_orders.is_empty() {
            // Without a stable order, rows shift between pages while paging.
            criteria = criteria.sort_by("entity_id", SortDirection::Asc);
        }
        let first_page = criteria.current_page.unwrap_or(1).max(1);
        Pager {
            client,
            template,
            criteria,
            page_size,
            concurrency: options.concurrency.get(),
            decode,
            decode_on,
            next_page: first_page,
            last_page: None,
            in_flight: FuturesOrdered::new(),
            previous_fingerprint: None,
            finished: false,
        }
    }

    pub(crate) fn into_stream(self) -> BoxStream<'static, Result<P, MagentoError>> {
        stream::unfold(self, Pager::advance).boxed()
    }

    async fn advance(mut self) -> Option<(Result<P, MagentoError>, Self)> {
        if self.finished {
            return None;
        }
        self.schedule();
        let (page_number, page, summary) = match self.in_flight.next().await? {
            Ok(fetched) => fetched,
            Err(error) => {
                self.finished = true;
                return Some((Err(error), self));
            }
        };
        if summary.item_count == 0 {
            tracing::debug!(page = page_number, "empty page: end of list");
            return None;
        }
        if self.previous_fingerprint == Some(summary.fingerprint) {
            tracing::warn!(
                page = page_number,
                "the store repeated the previous page (Magento 2.3 clamps currentPage): stopping"
            );
            return None;
        }
        self.previous_fingerprint = Some(summary.fingerprint);
        let page_size = u64::from(self.page_size);
        match summary.total_count {
            Some(total) => {
                self.last_page = Some(u32::try_from(total.div_ceil(page_size)).unwrap_or(u32::MAX));
                if u64::from(page_number) * page_size >= total {
                    self.finished = true;
                }
            }
            None if (summary.item_count as u64) < page_size => self.finished = true,
            None => {}
        }
        Some((Ok(page), self))
    }

    /// Starts fetches: one at a time until the total is known, then up to
    /// `concurrency` pages up to the last one.
    fn schedule(&mut self) {
        loop {
            let room = match self.last_page {
                Some(last) => self.next_page <= last && self.in_flight.len() < self.concurrency,
                None => self.in_flight.is_empty(),
            };
            if !room {
                return;
            }
            let page_number = self.next_page;
            self.in_flight.push_back(self.fetch(page_number));
            match self.next_page.checked_add(1) {
                Some(next) => self.next_page = next,
                None => {
                    self.finished = true;
                    return;
                }
            }
        }
    }

    fn fetch(&self, page_number: u32) -> PageFuture<P> {
        let client = self.client.clone();
        let criteria = self
            .criteria
            .clone()
            .page_size(self.page_size)
            .current_page(page_number);
        let call = self.template.clone().with_query(criteria.to_query_pairs());
        let decode = Arc::clone(&self.decode);
        let blocking = matches!(self.decode_on, DecodeOn::BlockingPool);
        Box::pin(async move {
            let body = client.send(&call).await?;
            let decoded = if blocking {
                tokio::task::spawn_blocking(move || decode(body, page_number))
                    .await
                    .map_err(|error| {
                        MagentoError::InvalidResponse(format!("page decoding failed: {error}"))
                    })?
            } else {
                decode(body, page_number)
            };
            let (page, summary) = decoded.map_err(MagentoError::InvalidResponse)?;
            Ok((page_number, page, summary))
        })
    }
}
