FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --home-dir /home/ledger ledger \
 && mkdir /data && chown ledger:ledger /data

WORKDIR /app
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY . .
RUN pip install --no-deps .

ENV LEDGER_DATABASE_URL=sqlite:////data/ledger.db \
    PORT=8000
VOLUME /data
USER ledger
EXPOSE 8000

CMD ["sh", "-c", "ledger db upgrade && exec gunicorn -c gunicorn.conf.py 'api:create_app()'"]
