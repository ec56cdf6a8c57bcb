"""Forms of the buyer's account pages."""

import hashlib

from django.contrib.auth.forms import PasswordResetForm
from django.core.cache import cache

from .models import User, normalize_email
from .services import customer_ensure_for_orders

# One reset email per address per window: the form answers the same whatever the address,
# so this only stops it being used to flood a buyer's inbox.
RESET_EMAIL_INTERVAL_SECONDS = 60


class OrderEmailPasswordResetForm(PasswordResetForm):
    """Password reset that also works for buyers who never registered.

    Django's form mails only existing users with a usable password. Here an address that
    has orders gets an account (with no usable password) on the spot, and customers whose
    password is unusable get the link too: following it is how they choose their first
    password. Staff accounts keep Django's rule. The page says the same for every address,
    so it tells nobody whether an address has orders or an account.
    """

    def get_users(self, email):
        email = normalize_email(email)
        throttle_key = "password-reset:" + hashlib.sha256(email.encode()).hexdigest()
        if not cache.add(throttle_key, 1, timeout=RESET_EMAIL_INTERVAL_SECONDS):
            return []
        customer_ensure_for_orders(email=email)
        return [
            user
            for user in User.objects.filter(email=email, is_active=True)
            if user.has_usable_password() or not user.is_staff
        ]
