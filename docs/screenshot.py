"""Take the README's screenshots of a running dashboard in headless Chromium.

    campus-twin demo &                     # or any running dashboard; it prints the admin's password
    CAMPUS_TWIN_PASSWORD=... python docs/screenshot.py http://127.0.0.1:8050 hq docs/img [USER]

Logs in through the login form first (USER, default ``admin``; the password from the
environment variable ``CAMPUS_TWIN_PASSWORD``, else a prompt).

Needs Debian's chromium and chromium-driver (and fonts-noto-cjk for Chinese room names).
"""

from __future__ import annotations

import getpass
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def login(driver: webdriver.Chrome, base: str, user: str, password: str) -> None:
    """Fill in the dashboard's login form."""
    driver.get(base + "/login")
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "login-username"))
    driver.find_element(By.ID, "login-username").send_keys(user)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "current-user"))


def main(base: str, site: str, out: Path, user: str = "admin") -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    out.mkdir(parents=True, exist_ok=True)
    try:
        login(driver, base, user, os.environ.get("CAMPUS_TWIN_PASSWORD") or getpass.getpass(f"password of {user}: "))
        wait = WebDriverWait(driver, 30)
        driver.get(base + "/")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card-link"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-map .scatterlayer .trace"))
        time.sleep(1)  # let the map settle
        driver.save_screenshot(str(out / "overview.png"))
        driver.get(f"{base}/site/{site}")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#site-floorplan .scatterlayer .trace")) > 3)
        time.sleep(1)
        driver.save_screenshot(str(out / "floorplan.png"))
    finally:
        driver.quit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), *sys.argv[4:5])
