"""The dashboard's pages, at the root of the site."""

from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("login/", views.DashboardLoginView.as_view(), name="login"),
    path("logout/", views.DashboardLogoutView.as_view(), name="logout"),
    path("clusters/rows/", views.fleet_rows, name="rows"),
    path("clusters/new/", views.register, name="register"),
    path("clusters/new/trust/", views.trust_and_register, name="trust"),
    path("clusters/<str:cluster_id>/", views.cluster_page, name="cluster"),
    path("clusters/<str:cluster_id>/edit/", views.edit, name="edit"),
    path("clusters/<str:cluster_id>/edit/trust/", views.trust_and_edit, name="edit-trust"),
    path("clusters/<str:cluster_id>/trust/", views.renew_trust, name="renew-trust"),
    path("clusters/<str:cluster_id>/refresh/", views.refresh, name="refresh"),
    path("clusters/<str:cluster_id>/deregister/", views.deregister, name="deregister"),
]
