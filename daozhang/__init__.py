"""daozhang (到账): proof that every card payment lands in the merchant's account."""

__version__ = "0.1.0"
