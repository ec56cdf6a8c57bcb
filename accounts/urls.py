"""Buyer account pages: login, logout, password reset and the customer's orders."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from downloads.views.headers import page_headers

from . import views

app_name = "accounts"

urlpatterns = [
    path("orders/", views.order_list, name="order_list"),
    path("orders/<str:access_token>/", views.order_detail, name="order_detail"),
    path(
        "orders/<str:access_token>/download-all/",
        views.order_download_all,
        name="order_download_all",
    ),
    path(
        "login/",
        page_headers(auth_views.LoginView.as_view(redirect_authenticated_user=True)),
        name="login",
    ),
    path("logout/", page_headers(auth_views.LogoutView.as_view()), name="logout"),
    path(
        "password-reset/",
        page_headers(views.PasswordResetView.as_view()),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        page_headers(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        page_headers(
            auth_views.PasswordResetConfirmView.as_view(
                success_url=reverse_lazy("accounts:password_reset_complete")
            )
        ),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        page_headers(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
]
