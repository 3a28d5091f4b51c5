//! Attribute stand-ins for `#[kani::proof]` and `#[kani::unwind(n)]`:
//! they leave the harness unchanged so it is type-checked.
extern crate proc_macro;
use proc_macro::TokenStream;

#[proc_macro_attribute]
pub fn proof(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

#[proc_macro_attribute]
pub fn unwind(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
