"""Fission: referrals, group buys (拼团), friend assists (助力) and fission metrics."""
