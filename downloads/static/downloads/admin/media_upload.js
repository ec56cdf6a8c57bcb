/* Direct upload on the admin's "Add media" page.
 *
 * Small files post with the form. From data-min-bytes up, the file goes straight to storage:
 * 1. POST {filename, byte_size, content_type} to data-start-url (a staff-only admin view)
 *    -> {upload_url, method, fields, headers, complete_url};
 * 2. send the bytes to upload_url with XMLHttpRequest, whose upload progress drives the bar
 *    (S3: a presigned POST with `fields`, or a presigned PUT; local storage: the app's own
 *    upload endpoint, same flow);
 * 3. POST complete_url -> the new media; go to its page, where a message says so and offers
 *    "Use it in a product" (or hand it to the opener in a popup).
 * Plain JavaScript, no build step.
 */
'use strict';
(function () {
    function sameOrigin(url) {
        return new URL(url, window.location.href).origin === window.location.origin;
    }

    function init() {
        const box = document.getElementById('direct-upload');
        const form = document.getElementById('media_form');
        const input = form && form.querySelector('input[type="file"][name="upload"]');
        if (!box || !form || !input) {
            return;
        }
        const minBytes = Number(box.dataset.minBytes);
        const maxBytes = Number(box.dataset.maxBytes);
        const csrfToken = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
        const bar = box.querySelector('progress');
        const percent = box.querySelector('.direct-upload-percent');
        const status = box.querySelector('.direct-upload-status');
        const nameLabel = box.querySelector('.direct-upload-name');
        const buttons = form.querySelectorAll('input[type="submit"], button[type="submit"]');
        let busy = false;

        function setStatus(text, isError) {
            status.textContent = text;
            status.classList.toggle('error', Boolean(isError));
        }

        function showProgress(loaded, total) {
            const value = total ? Math.floor((loaded / total) * 100) : 0;
            bar.value = value;
            percent.textContent = value + '%';
            box.dataset.progress = String(value);
        }

        function setBusy(value) {
            busy = value;
            buttons.forEach(function (button) { button.disabled = value; });
            input.disabled = value;
        }

        function postJson(url, body) {
            return fetch(url, {
                method: 'POST',
                credentials: 'same-origin',
                headers: {
                    'Content-Type': 'application/json',
                    'Accept': 'application/json',
                    'X-CSRFToken': csrfToken
                },
                body: JSON.stringify(body || {})
            }).then(function (response) {
                return response.json().catch(function () { return {}; }).then(function (data) {
                    if (!response.ok) {
                        throw new Error(data.message || ('The server answered ' + response.status + '.'));
                    }
                    return data;
                });
            });
        }

        function sendBytes(target, file) {
            return new Promise(function (resolve, reject) {
                const method = (target.method || 'PUT').toUpperCase();
                const xhr = new XMLHttpRequest();
                xhr.open(method, target.upload_url);
                const headers = target.headers || {};
                Object.keys(headers).forEach(function (name) {
                    xhr.setRequestHeader(name, headers[name]);
                });
                if (sameOrigin(target.upload_url)) {
                    xhr.setRequestHeader('X-CSRFToken', csrfToken);
                }
                xhr.upload.addEventListener('progress', function (event) {
                    if (event.lengthComputable) {
                        showProgress(event.loaded, event.total);
                    }
                });
                xhr.addEventListener('load', function () {
                    if (xhr.status >= 200 && xhr.status < 300) {
                        resolve();
                    } else {
                        reject(new Error('The storage refused the upload (' + xhr.status + ').'));
                    }
                });
                xhr.addEventListener('error', function () {
                    reject(new Error('The upload failed: the connection was lost.'));
                });
                xhr.addEventListener('abort', function () {
                    reject(new Error('The upload was cancelled.'));
                });
                let body = file;
                if (method === 'POST' && target.fields) {
                    // A presigned POST: the policy fields first, the file last.
                    body = new FormData();
                    Object.keys(target.fields).forEach(function (name) {
                        body.append(name, target.fields[name]);
                    });
                    body.append('file', file);
                }
                xhr.send(body);
            });
        }

        function finish(media) {
            const popup = form.querySelector('input[name="_popup"]');
            if (popup && window.opener && window.opener.dismissAddRelatedObjectPopup) {
                window.opener.dismissAddRelatedObjectPopup(window, media.id, media.filename);
                return;
            }
            window.location.assign(media.change_url);
        }

        form.addEventListener('submit', function (event) {
            const file = input.files && input.files[0];
            if (!file || file.size < minBytes) {
                return; // posts with the form
            }
            event.preventDefault();
            if (busy) {
                return;
            }
            box.hidden = false;
            nameLabel.textContent = file.name;
            showProgress(0, file.size);
            if (file.size > maxBytes) {
                setStatus('This file is larger than the largest upload the store accepts.', true);
                return;
            }
            setBusy(true);
            setStatus('Starting the upload…');
            postJson(box.dataset.startUrl, {
                filename: file.name,
                byte_size: file.size,
                content_type: file.type || ''
            }).then(function (target) {
                setStatus('Uploading…');
                return sendBytes(target, file).then(function () {
                    showProgress(file.size, file.size);
                    setStatus('Checking the file…');
                    // In a popup the file goes to the opener; elsewhere the server keeps a
                    // message for the file's page.
                    return postJson(target.complete_url, {
                        popup: Boolean(form.querySelector('input[name="_popup"]'))
                    });
                });
            }).then(function (media) {
                setStatus('Done.');
                box.dataset.state = 'done';
                finish(media);
            }).catch(function (error) {
                box.dataset.state = 'error';
                setStatus(error.message, true);
                setBusy(false);
            });
        });
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
})();
