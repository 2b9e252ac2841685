//! Page requests and pages, shared by every listing.

use serde::Serialize;

/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;
/// The page size when the client gives none.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The highest page number accepted; keeps offsets far inside every database's integer range.
pub const MAX_PAGE: u64 = 1_000_000;

/// A validated 1-based page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    page: u64,
    page_size: u64,
}

/// Why a page request was refused; names the offending parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("page must be between 1 and {MAX_PAGE}")]
    Page,
    #[error("page_size must be between 1 and {MAX_PAGE_SIZE}")]
    PageSize,
}

impl PageError {
    /// The query parameter at fault.
    pub fn field(&self) -> &'static str {
        match self {
            PageError::Page => "page",
            PageError::PageSize => "page_size",
        }
    }
}

impl PageRequest {
    pub fn new(page: Option<u64>, page_size: Option<u64>) -> Result<Self, PageError> {
        let page = page.unwrap_or(1);
        let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page == 0 || page > MAX_PAGE {
            return Err(PageError::Page);
        }
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(PageError::PageSize);
        }
        Ok(Self { page, page_size })
    }

    pub fn page(&self) -> u64 {
        self.page
    }

    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// One page of a listing and the total number of items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests_are_validated_and_offset() {
        let req = PageRequest::new(Some(3), Some(10)).unwrap();
        assert_eq!(req.offset(), 20);
        assert_eq!(
            PageRequest::new(None, None).unwrap(),
            PageRequest::default()
        );
        assert_eq!(PageRequest::new(Some(0), None), Err(PageError::Page));
        assert_eq!(PageRequest::new(Some(u64::MAX), None), Err(PageError::Page));
        assert_eq!(
            PageRequest::new(Some(MAX_PAGE), Some(MAX_PAGE_SIZE))
                .unwrap()
                .offset(),
            99_999_900
        );
        assert_eq!(PageRequest::new(None, Some(0)), Err(PageError::PageSize));
        assert_eq!(PageRequest::new(None, Some(101)), Err(PageError::PageSize));
        assert_eq!(PageError::PageSize.field(), "page_size");
    }
}
