"""Orders belong to the customer whose email they carry, including users who register later."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import User
from .services import user_claim_orders


@receiver(post_save, sender=User, dispatch_uid="accounts.user_claim_orders")
def claim_orders_on_save(sender, instance: User, created: bool, raw: bool = False, **kwargs):
    if not raw:
        user_claim_orders(user=instance)
