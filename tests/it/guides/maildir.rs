//! docs/mix-2-postfix-front.md
